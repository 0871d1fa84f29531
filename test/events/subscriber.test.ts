// The subscriber against a real JetStream: unreadable events are terminated (no crash, no loop);
// killed mid-stream and restarted it loses nothing; replaying everything changes nothing that matters.
import { connect, StringCodec, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Config } from '../../lib/config.js'
import { consumers, streams, subjects } from '../../lib/subjects.js'
import { openBlocklistBucket, ensureGatewayStream } from '../../lib/streams.js'
import { createSubscriber, type Subscriber } from '../../events/subscriber.js'
import { createEventPublisher } from '../../server/events/publisher.js'
import { captureLogs, sleep, testConfig } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { streamCount, waitFor } from './edge-stack.js'

const COMPLETED = subjects.gatewayEvent('request.completed')

describe('subscriber', () => {
  let nats: NatsServer
  let config: Config
  let nc: NatsConnection
  const sink = captureLogs('info')
  const open: Array<{ sub: Subscriber; nc: NatsConnection }> = []

  async function startSubscriber(onEvent: (id: string) => void) {
    const own = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
    const sub = createSubscriber(own, config, { log: sink.log, onProcessed: (e) => onEvent(e.id) })
    open.push({ sub, nc: own })
    await sub.started()
    return { sub, nc: own }
  }

  beforeAll(async () => {
    nats = await startNats()
    config = testConfig(nats.url, { subscriberAckWaitSec: 1, autoBlockHits: 5, autoBlockWindowSec: 60, autoBlockTtlSec: 600 })
    nc = await connect({ servers: nats.url })
    await ensureGatewayStream(nc, config, sink.log)
  })
  afterAll(async () => {
    for (const o of open) {
      await o.sub.close().catch(() => undefined)
      if (!o.nc.isClosed()) await o.nc.close()
    }
    await nc?.close()
    await nats?.stop()
  })

  it('terminates malformed and unknown-version events with a logged reason, and goes on', async () => {
    const js = nc.jetstream()
    const processed: string[] = []
    const { sub } = await startSubscriber((id) => processed.push(id))
    await js.publish(COMPLETED, '{oops')
    await js.publish(COMPLETED, JSON.stringify({ v: 2, id: 'future-1', kind: 'request.completed' }))
    await js.publish(subjects.gatewayEvent('rate_limit.hit'), JSON.stringify({ v: 1, id: 'x', kind: 'request.completed' }))
    const good = { v: 1, id: 'good-1', ts: Date.now(), source: 'test', kind: 'request.completed', requestId: 'r', traceId: 't', method: 'GET', route: '/r', clientKey: 'k', address: '198.51.100.1', status: 200, latencyMs: 1, startedAt: Date.now() }
    await js.publish(COMPLETED, JSON.stringify({ ...good, kind: 'rate_limit.hit' }))
    await js.publish(COMPLETED, JSON.stringify(good))
    await waitFor('good event processed', () => processed, (p) => p.includes('good-1'))
    expect(sub.stats().terminated).toBe(4)
    // past the ack wait: nothing comes back, no crash loop
    await sleep(1500)
    expect(sub.stats().terminated).toBe(4)
    const reasons = sink.lines.filter((l) => l.msg === 'unreadable gateway event terminated').map((l) => String(l.reason))
    expect(reasons).toEqual(expect.arrayContaining(['malformed JSON', 'unknown version 2']))
    await sub.close()
  })

  it('turns an opened circuit into an alert on alerts.> with a Nats-Msg-Id', async () => {
    const alerts: Array<{ subject: string; id: string | undefined; body: Record<string, unknown> }> = []
    const sub = nc.subscribe(subjects.alertAll, {
      callback: (_err, m) => alerts.push({ subject: m.subject, id: m.headers?.get('Nats-Msg-Id'), body: m.json<Record<string, unknown>>() }),
    })
    const processed: string[] = []
    const { sub: subscriber } = await startSubscriber((id) => processed.push(id))
    const publisher = createEventPublisher(nc, config, { log: sink.log, ensureStream: false })
    publisher.emit({ kind: 'circuit.opened', upstream: 'orders-api', reason: '5 failures in 10s' })
    await waitFor('alert', () => alerts.length, (n) => n === 1)
    expect(alerts[0]).toMatchObject({ subject: 'alerts.circuit_opened', body: { v: 1, kind: 'circuit_opened', details: { upstream: 'orders-api' } } })
    expect(alerts[0]!.id).toMatch(/^circuit_opened-gw-/)
    expect(subscriber.stats().alerts).toBe(1)
    sub.unsubscribe()
    await subscriber.close()
    await publisher.close()
  })

  it('killed mid-stream and restarted, it loses no event; replaying everything blocks once', async () => {
    const publisher = createEventPublisher(nc, { ...config, eventsBufferSize: 10_000 }, { log: sink.log, ensureStream: false })
    const N = 400
    const flooder = '203.0.113.200'
    for (let i = 0; i < N; i++) {
      if (i % 50 === 25) {
        publisher.emit({ kind: 'rate_limit.hit', requestId: `h${i}`, traceId: 't', method: 'GET', route: '/r', clientKey: flooder, address: flooder, capacity: 1, refillPerSec: 1 })
      } else {
        publisher.emit({ kind: 'request.completed', requestId: `c${i}`, traceId: 't', method: 'GET', route: '/r', clientKey: 'k', address: '198.51.100.9', status: 200, latencyMs: 1 + (i % 3), startedAt: Date.now() })
      }
    }
    expect(await publisher.flush(10_000)).toBe(true)
    expect(publisher.stats().published).toBe(N)
    const expected = N + 1 // earlier tests' events are already acked; the ip.blocked event joins the stream

    const seen = new Set<string>()
    let first = 0
    const one = await startSubscriber((id) => {
      seen.add(id)
      first++
    })
    await waitFor('first subscriber mid-stream', () => first, (n) => n >= 100, 5000, 1)
    // killed: no drain, no close of the consumer; whatever it pulled and did not ack comes back
    await one.nc.close()
    const stoppedAt = first
    expect(stoppedAt).toBeLessThan(N)

    let second = 0
    await startSubscriber((id) => {
      seen.add(id)
      second++
    })
    await waitFor('every event processed', () => seen.size, (n) => n >= expected, 15_000, 50).catch((err: unknown) => {
      console.log('DEBUG', seen.size, first, second, sink.lines.filter((l) => (l.level as number) >= 40).slice(-10))
      throw err
    })
    const jsm = await nc.jetstreamManager()
    const info = await waitFor('consumer drained', () => jsm.consumers.info(streams.gateway, consumers.subscriber), (i) => i.num_pending === 0 && i.num_ack_pending === 0)
    expect(info.num_pending + info.num_ack_pending).toBe(0)
    expect(second).toBeGreaterThanOrEqual(N - stoppedAt)
    expect(seen.size).toBe(expected)
    expect(await streamCount(nc, subjects.gatewayEvent('ip.blocked'))).toBe(1)
    const kv = await openBlocklistBucket(nc, config)
    const entry = await kv.get(flooder)
    const before = StringCodec().decode(entry!.value)

    // Replay the whole stream through a fresh consumer: the same block, stored once.
    for (const o of open) await o.sub.close()
    await jsm.consumers.delete(streams.gateway, consumers.subscriber)
    let replayed = 0
    await startSubscriber(() => replayed++)
    await waitFor('replayed', () => replayed, (n) => n >= expected, 15_000, 50)
    await sleep(200)
    expect(await streamCount(nc, subjects.gatewayEvent('ip.blocked'))).toBe(1)
    expect(StringCodec().decode((await kv.get(flooder))!.value)).toBe(before)
    await publisher.close()
  })

  it('hits that outrun the block (in flight while it reaches the gateways) block, log and publish once', async () => {
    for (const o of open) await o.sub.close() // one subscriber, so its stats see every event
    const publisher = createEventPublisher(nc, config, { log: sink.log, ensureStream: false })
    const flooder = '203.0.113.201'
    const blockedBefore = await streamCount(nc, subjects.gatewayEvent('ip.blocked'))
    const hits = 17 // three times the threshold and more: every one arrives before any gateway refuses
    for (let i = 0; i < hits; i++) {
      publisher.emit({ kind: 'rate_limit.hit', requestId: `o${i}`, traceId: 't', method: 'GET', route: '/r', clientKey: flooder, address: flooder, capacity: 1, refillPerSec: 1 })
      await sleep(2) // distinct timestamps, as a real flood has
    }
    expect(await publisher.flush(5000)).toBe(true)
    const ids = new Set<string>()
    const { sub } = await startSubscriber((id) => ids.add(id))
    await waitFor('every hit handled', () => sub.stats().processed, (n) => n >= hits, 10_000, 20)
    await sleep(200)
    expect(sub.stats().blocks).toBe(1)
    expect(await streamCount(nc, subjects.gatewayEvent('ip.blocked'))).toBe(blockedBefore + 1)
    const logged = sink.lines.filter((l) => l.msg === 'address blocked' && l.address === flooder)
    expect(logged).toHaveLength(1)
    // once the block is lifted, a new flood blocks again
    const kv = await openBlocklistBucket(nc, config)
    await kv.delete(flooder)
    for (let i = 0; i < 5; i++) {
      await sleep(2)
      publisher.emit({ kind: 'rate_limit.hit', requestId: `p${i}`, traceId: 't', method: 'GET', route: '/r', clientKey: flooder, address: flooder, capacity: 1, refillPerSec: 1 })
    }
    expect(await publisher.flush(5000)).toBe(true)
    await waitFor('blocked again', () => sub.stats().blocks, (n) => n === 2, 10_000, 20)
    expect((await kv.get(flooder))?.operation).toBe('PUT')
    await publisher.close()
  })
})
