// Gateway events against a real nats-server with JetStream: every request leaves one completion
// event; NATS going away never stalls a request; drops are counted; publishing resumes.
import { Type } from '@sinclair/typebox'
import { connect, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineFlow, type Flow } from '../../flows/define.js'
import { streams, subjects } from '../../lib/subjects.js'
import { decodeEvent } from '../../schemas/events.js'
import { createEventPublisher } from '../../server/events/publisher.js'
import { captureLogs, sleep, startWorker, testConfig, waitForRoute, type TestWorker } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { startEdgeGateway, streamCount, waitFor, type EdgeGateway } from './edge-stack.js'

const ping = defineFlow({
  name: 'test.ping',
  input: Type.Object({ id: Type.String({ maxLength: 20 }) }),
  output: Type.Object({ id: Type.String() }),
  http: { method: 'GET', path: '/test/ping/:id' },
  auth: 'public',
  async run(input) {
    return { id: input.id }
  },
}) as unknown as Flow

const COMPLETED = subjects.gatewayEvent('request.completed')

describe('gateway events on JetStream', () => {
  let nats: NatsServer
  let worker: TestWorker
  let gw: EdgeGateway
  let probe: NatsConnection
  const sink = captureLogs('warn')

  beforeAll(async () => {
    nats = await startNats()
    const config = testConfig(nats.url, { rateLimitCapacity: 100000, eventsBufferSize: 50 })
    worker = await startWorker(config, [ping], sink.log)
    gw = await startEdgeGateway(config, sink.log)
    probe = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
    await waitForRoute(gw.gateway, 'GET', '/api/v1/test/ping/x')
    await waitFor('stream', () => streamCount(probe, COMPLETED).then(() => probe.jetstreamManager()).then((m) => m.streams.info(streams.gateway)).then(() => true, () => false), Boolean)
  })
  afterAll(async () => {
    await probe?.close()
    await gw?.stop()
    await worker?.stop()
    await nats?.stop()
  })

  it('N requests give N completion events, with Nats-Msg-Id, route template and versioned payload', async () => {
    const N = 120
    const before = await streamCount(probe, COMPLETED)
    for (let i = 0; i < N; i++) {
      const r = await gw.gateway.app.inject({ url: `/api/v1/test/ping/p${i}`, remoteAddress: '198.51.100.5' })
      expect(r.statusCode).toBe(200)
    }
    expect(await gw.edge.events!.flush(5000)).toBe(true)
    expect((await streamCount(probe, COMPLETED)) - before).toBe(N)

    const jsm = await probe.jetstreamManager()
    const info = await jsm.streams.info(streams.gateway)
    expect(info.config.subjects).toEqual([subjects.gatewayAll])
    expect(info.config.duplicate_window).toBeGreaterThan(0)
    expect(info.config.max_age).toBeGreaterThan(0)
    expect(info.config.max_bytes).toBeGreaterThan(0)
    const last = await jsm.streams.getMessage(streams.gateway, { last_by_subj: COMPLETED })
    const decoded = decodeEvent(last.data)
    expect(decoded.ok).toBe(true)
    if (!decoded.ok) return
    expect(decoded.value).toMatchObject({ v: 1, kind: 'request.completed', route: '/api/v1/test/ping/:id', method: 'GET', status: 200, address: '198.51.100.5' })
    expect(last.header.get('Nats-Msg-Id')).toBe(decoded.value.id)

    // the same Nats-Msg-Id published again is stored once
    const js = probe.jetstream()
    const ack = await js.publish(COMPLETED, last.data, { msgID: decoded.value.id })
    expect(ack.duplicate).toBe(true)
    expect((await streamCount(probe, COMPLETED)) - before).toBe(N)
  })

  it('never throws on a closed connection; what it could not send is counted', async () => {
    const own = await connect({ servers: nats.url })
    const publisher = createEventPublisher(own, testConfig(nats.url), { log: sink.log, ensureStream: false })
    await own.close()
    for (let i = 0; i < 10; i++) {
      publisher.emit({ kind: 'circuit.closed', upstream: 'x' })
    }
    await sleep(50)
    await publisher.close(100)
    const { dropped, published } = publisher.stats()
    expect(published).toBe(0)
    expect(dropped.closed + dropped.publish_failed).toBe(10)
  })

  it('NATS down mid-traffic: requests still answered at once, drops counted, publishing resumes', async () => {
    const events = gw.edge.events!
    const before = await streamCount(probe, COMPLETED)
    const statsBefore = events.stats()
    await nats.pause()
    await waitFor('gateway sees the outage', () => gw.nc.isClosed() || gw.gateway.requester.connected(), (up) => !up, 3000)
    const started = Date.now()
    for (let i = 0; i < 80; i++) {
      const r = await gw.gateway.app.inject({ url: '/health', remoteAddress: '198.51.100.6' })
      expect(r.statusCode).toBe(200)
    }
    // flow routes answer too (503, fast), never hang on the event queue
    const flow = await gw.gateway.app.inject({ url: '/api/v1/test/ping/down', remoteAddress: '198.51.100.6' })
    expect([503, 504]).toContain(flow.statusCode)
    expect(Date.now() - started).toBeLessThan(3000)
    const during = events.stats()
    expect(during.dropped.buffer_full - statsBefore.dropped.buffer_full).toBeGreaterThanOrEqual(80 + 1 - 50)

    await nats.restart()
    await waitFor('queued events published', () => events.stats(), (s) => s.queued === 0 && s.inFlight === 0, 15_000, 100)
    const after = events.stats()
    const published = after.published - statsBefore.published
    expect(published).toBeGreaterThan(0)
    const lost = after.dropped.buffer_full + after.dropped.publish_failed - statsBefore.dropped.buffer_full - statsBefore.dropped.publish_failed
    expect(published + lost).toBe(81)
    // JetStream takes a moment to recover its store after a restart; counts read 0 until then.
    await waitFor('stored after the outage', () => streamCount(probe, COMPLETED), (n) => n - before === published, 15_000, 100)

    // and new events flow again
    await gw.gateway.app.inject({ url: '/health', remoteAddress: '198.51.100.6' })
    expect(await events.flush(5000)).toBe(true)
    await waitFor('new events stored', () => streamCount(probe, COMPLETED), (n) => n - before === published + 1, 10_000, 50)
    expect(sink.lines.some((l) => l.msg === 'gateway events dropped')).toBe(true)
  }, 40_000)
})

describe('gateway started while NATS is down', () => {
  // nats.js cannot hand out a connection that never connected, so the gateway's connection is made
  // first and the server goes away before anything of the edge (stream, bucket, publisher) exists.
  it('serves at once and publishes once NATS and JetStream appear', async () => {
    const nats = await startNats()
    const sink = captureLogs('warn')
    try {
      const config = testConfig(nats.url, { eventsBufferSize: 1000 })
      const gw = await startEdgeGateway(config, sink.log, { beforeBuild: () => nats.pause() })
      for (let i = 0; i < 20; i++) expect((await gw.gateway.app.inject({ url: '/health', remoteAddress: '198.51.100.7' })).statusCode).toBe(200)
      await nats.restart()
      const probe = await connect({ servers: nats.url })
      await waitFor('events stored', () => streamCount(probe, COMPLETED), (n) => n === 20, 15_000, 100)
      const stats = gw.edge.events!.stats()
      expect(stats.published).toBe(20)
      await probe.close()
      await gw.stop()
    } finally {
      await nats.stop()
    }
  }, 30_000)
})
