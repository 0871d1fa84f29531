// The enforced auto-block end to end: real NATS (JetStream + KV) and Redis, two gateways sharing a
// Redis-backed limit, the subscriber. A flood from one address is refused on both gateways within
// a second of the block and let in again after the TTL; admins list and lift blocks.
import { connect, StringCodec, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { createBlocklistStore } from '../../lib/blocklist.js'
import type { Config } from '../../lib/config.js'
import { subjects } from '../../lib/subjects.js'
import { openBlocklistBucket } from '../../lib/streams.js'
import { createSubscriber, type Subscriber } from '../../events/subscriber.js'
import type { RedisStore } from '../../server/edge/redis-store.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { startRedis, type RedisServer } from '../harness/redis.js'
import { startEdgeGateway, streamCount, waitFor, type EdgeGateway } from './edge-stack.js'

const TTL_SEC = 3
const FLOODER = '203.0.113.77'

describe('auto-block across gateways', () => {
  let nats: NatsServer
  let redis: RedisServer
  let config: Config
  let a: EdgeGateway
  let b: EdgeGateway
  let subscriber: Subscriber
  let subNc: NatsConnection
  let blockedAtMs = 0
  const sink = captureLogs('warn')

  beforeAll(async () => {
    ;[nats, redis] = await Promise.all([startNats(), startRedis()])
    config = testConfig(nats.url, {
      redisUrl: redis.url,
      rateLimitStore: 'redis',
      rateLimitCapacity: 3,
      rateLimitRefillPerSec: 0.01,
      autoBlockHits: 5,
      autoBlockWindowSec: 60,
      autoBlockTtlSec: TTL_SEC,
      subscriberAckWaitSec: 2,
    })
    ;[a, b] = await Promise.all([startEdgeGateway(config, sink.log), startEdgeGateway(config, sink.log)])
    await Promise.all([a, b].map((g) => (g.edge.store as RedisStore).ready()))
    subNc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
    subscriber = createSubscriber(subNc, config, {
      log: sink.log,
      onProcessed: (_e, actions) => {
        if (actions.some((x) => x.type === 'block')) blockedAtMs = Date.now()
      },
    })
    await subscriber.started()
    await waitFor('blocklists watching', () => [a, b].every((g) => g.edge.blocklist!.ready()), Boolean)
  })
  afterAll(async () => {
    await subscriber?.close()
    await subNc?.close()
    await a?.stop()
    await b?.stop()
    await nats?.stop()
    await redis?.stop()
  })

  const hit = (g: EdgeGateway, address = FLOODER) => g.gateway.app.inject({ url: '/api/v1/nothing/here', remoteAddress: address })

  it('a flood from one address is blocked on both gateways within a second, then lifted after the TTL', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 10; i++) statuses.push((await hit(i % 2 ? a : b)).statusCode)
    // one shared Redis limit: 3 through (404: no such flow), the rest refused; the block may already
    // land during the flood (403 instead of 429 for the last few)
    expect(statuses.slice(0, 3)).toEqual([404, 404, 404])
    expect(statuses.slice(3).every((s) => s === 429 || s === 403)).toBe(true)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(5)

    await waitFor('block written', () => blockedAtMs, (t) => t > 0, 5000)
    const bothBlocked = await waitFor(
      'both gateways refuse',
      async () => [(await hit(a)).statusCode, (await hit(b)).statusCode],
      (s) => s[0] === 403 && s[1] === 403,
      3000,
      10,
    )
    expect(bothBlocked).toEqual([403, 403])
    expect(Date.now() - blockedAtMs).toBeLessThan(1000)
    const refused = await b.gateway.app.inject({ url: '/api/v1/anything', remoteAddress: FLOODER })
    expect(refused.json()).toMatchObject({ success: false, status: 403, errorCode: 'IP_BLOCKED' })
    // others are not affected
    expect((await hit(a, '203.0.113.78')).statusCode).toBe(404)
    expect(await streamCount(subNc, subjects.gatewayEvent('ip.blocked'))).toBe(1)

    const lifted = await waitFor('block expires', async () => [(await hit(a)).statusCode, (await hit(b)).statusCode], (s) => s[0] !== 403 && s[1] !== 403, (TTL_SEC + 3) * 1000, 50)
    expect(lifted).not.toContain(403)
    expect(Date.now() - blockedAtMs).toBeGreaterThanOrEqual(TTL_SEC * 1000 - 1000)
  })

  it('admins list and lift blocks; everyone else is refused', async () => {
    const tokens = createTokenService(config)
    // Admin calls are rate-limited too (by token subject, capacity 3 here): one admin per call.
    let n = 0
    const adminToken = () => `Bearer ${tokens.sign({ sub: `admin-${++n}`, role: 'admin' }).token}`
    const customer = `Bearer ${tokens.sign({ sub: 'cust-1', role: 'customer' }).token}`
    const target = '198.51.100.99'
    const now = Date.now()
    await createBlocklistStore(subNc, config).block({ address: target, reason: 'manual', blockedAt: now, expiresAt: now + 60_000 })
    await waitFor('blocked on both', async () => [(await hit(a, target)).statusCode, (await hit(b, target)).statusCode], (s) => s[0] === 403 && s[1] === 403, 1000, 10)

    const list = await a.gateway.app.inject({ url: '/admin/blocks', headers: { authorization: adminToken() } })
    expect(list.statusCode).toBe(200)
    expect(list.json()).toMatchObject({ success: true, data: { blocks: expect.arrayContaining([expect.objectContaining({ address: target, reason: 'manual', expiresAt: now + 60_000 })]) } })
    expect((await a.gateway.app.inject({ url: '/admin/blocks' })).statusCode).toBe(401)
    expect((await a.gateway.app.inject({ url: '/admin/blocks', headers: { authorization: customer } })).json()).toMatchObject({ errorCode: 'FORBIDDEN' })
    expect((await a.gateway.app.inject({ method: 'DELETE', url: `/admin/blocks/${target}`, headers: { authorization: customer } })).statusCode).toBe(403)
    expect((await a.gateway.app.inject({ method: 'DELETE', url: '/admin/blocks/not-an-ip', headers: { authorization: adminToken() } })).statusCode).toBe(400)

    const lift = await a.gateway.app.inject({ method: 'DELETE', url: `/admin/blocks/${target}`, headers: { authorization: adminToken() } })
    expect(lift.json()).toMatchObject({ success: true, data: { address: target, lifted: true } })
    await waitFor('lifted on b', async () => (await hit(b, target)).statusCode, (s) => s !== 403, 1000, 10)
    expect((await a.gateway.app.inject({ method: 'DELETE', url: `/admin/blocks/${target}`, headers: { authorization: adminToken() } })).statusCode).toBe(404)
  })

  it('the CLI adds, lists and lifts blocks, enforced by the gateways', async () => {
    const { runEdgeCommand } = await import('../../cli/events.js')
    const lines: string[] = []
    const run = (command: 'events' | 'blocks', ...args: string[]) => runEdgeCommand(command, args, config, sink.log, (l) => lines.push(l), new AbortController().signal)
    expect(await run('blocks', 'add', '2001:db8:7:7::1', '2')).toBe(0)
    await waitFor('CLI block enforced', async () => (await a.gateway.app.inject({ url: '/x', remoteAddress: '2001:db8:7:7::abcd' })).statusCode, (s) => s === 403, 1000, 10)
    expect(await run('blocks', 'list')).toBe(0)
    expect(lines.some((l) => l.startsWith('2001:db8:7:7::/64') && l.includes('blocked by an admin'))).toBe(true)
    expect(await run('blocks', 'lift', '2001:db8:7:7::/64')).toBe(0)
    await waitFor('CLI lift enforced', async () => (await b.gateway.app.inject({ url: '/x', remoteAddress: '2001:db8:7:7::1' })).statusCode, (s) => s !== 403, 1000, 10)
    expect(await run('blocks', 'lift', '2001:db8:7:7::1')).toBe(1)
    expect(await run('blocks', 'add', 'nope')).toBe(2)
    expect(await run('blocks', 'add', '203.0.113.5', String(TTL_SEC + 1))).toBe(2) // longer than the bucket keeps entries
    expect(await run('events', 'tail', 'no.such.kind')).toBe(2)

    const stop = new AbortController()
    const tailed: string[] = []
    const tailing = runEdgeCommand('events', ['tail', 'request.completed'], config, sink.log, (l) => tailed.push(l), stop.signal)
    await waitFor(
      'tail prints a completion event',
      async () => {
        await a.gateway.app.inject({ url: '/health', remoteAddress: '198.51.100.120' })
        return tailed.some((l) => l.includes('request.completed') && l.includes('198.51.100.120'))
      },
      Boolean,
      5000,
      100,
    )
    stop.abort()
    expect(await tailing).toBe(0)
  })

  it('ignores KV entries with a malformed key or value, logging why, and keeps serving', async () => {
    const kv = await openBlocklistBucket(subNc, config)
    const sc = StringCodec()
    await kv.put('not-an-address', sc.encode(JSON.stringify({ v: 1, address: 'x', reason: 'r', blockedAt: 0, expiresAt: Date.now() + 60_000 })))
    await kv.put('198.51.100.100', sc.encode('{garbage'))
    await kv.put('198.51.100.101', sc.encode(JSON.stringify({ v: 1, address: '198.51.100.102', reason: 'r', blockedAt: 0, expiresAt: Date.now() + 60_000 })))
    await waitFor('warnings logged', () => sink.lines.filter((l) => l.msg === 'blocklist entry ignored').length, (n) => n >= 6, 2000)
    const ignored = (key: string) => sink.lines.find((l) => l.msg === 'blocklist entry ignored' && l.key === key)?.reason
    expect(ignored('not-an-address')).toBe('malformed key')
    expect(ignored('198.51.100.100')).toBe('malformed JSON')
    expect(ignored('198.51.100.101')).toMatch(/another address/)
    for (const addr of ['198.51.100.100', '198.51.100.101', '198.51.100.102']) expect((await hit(a, addr)).statusCode).toBe(404)
  })
})
