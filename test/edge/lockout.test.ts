// No self-lockout, end to end with the development defaults: a curl loop from the developer's own
// machine is limited but never blocked; a flooding address is blocked everywhere except where an
// orchestrator probes and where an admin lifts blocks. Real NATS (JetStream, KV), a real gateway
// with its edge, the real subscriber.
import { connect, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import { openBlocklistBucket } from '../../lib/streams.js'
import { createSubscriber, type Subscriber } from '../../events/subscriber.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { startEdgeGateway, waitFor, type EdgeGateway } from '../events/edge-stack.js'

describe('self-lockout', () => {
  let nats: NatsServer
  let config: Config
  let gw: EdgeGateway
  let subNc: NatsConnection
  let subscriber: Subscriber
  let handledHits = 0
  const sink = captureLogs('warn')

  beforeAll(async () => {
    nats = await startNats()
    // The defaults a developer gets from `npm start` (development: loopback exempt), with the real limits.
    config = testConfig(nats.url, { nodeEnv: 'development', logLevel: 'warn' })
    expect(config.autoBlockExempt).toEqual(['127.0.0.0/8', '::1'])
    expect([config.rateLimitCapacity, config.autoBlockHits, config.autoBlockTtlSec]).toEqual([10, 5, 900])
    gw = await startEdgeGateway(config, sink.log)
    subNc = await connect({ servers: nats.url })
    subscriber = createSubscriber(subNc, config, {
      log: sink.log,
      onProcessed: (e) => {
        if (e.kind === 'rate_limit.hit') handledHits++
      },
    })
    await subscriber.started()
    await waitFor('blocklist watching', () => gw.edge.blocklist!.ready(), Boolean)
  })
  afterAll(async () => {
    await subscriber?.close()
    await subNc?.close()
    await gw?.stop()
    await nats?.stop()
  })

  const get = (url: string, remoteAddress: string, headers: Record<string, string> = {}) =>
    gw.gateway.app.inject({ url, remoteAddress, headers })

  it('a 25-request loop from localhost is limited, never blocked', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 25; i++) statuses.push((await get('/api/v1/healthcheck', '127.0.0.1')).statusCode)
    // 10 through (503: no flow worker in this test), then 429s
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(10)
    await waitFor('every hit handled', () => handledHits, (n) => n >= statuses.filter((s) => s === 429).length, 10_000)
    expect(subscriber.stats().blocks).toBe(0)
    expect(await (await openBlocklistBucket(subNc, config)).get('127.0.0.1')).toBeNull()
    expect(gw.edge.blocklist!.get('127.0.0.1')).toBeUndefined()
    const ipv6 = []
    for (let i = 0; i < 25; i++) ipv6.push((await get('/docs', '::1')).statusCode)
    expect(ipv6).not.toContain(403)
  })

  it('a flooding address is blocked, but probes, metrics and the admin route that lifts blocks still answer', async () => {
    const flooder = '198.51.100.20'
    for (let i = 0; i < 20; i++) await get('/api/v1/healthcheck', flooder)
    const refused = await waitFor('blocked', () => get('/docs', flooder), (r) => r.statusCode === 403, 10_000)
    const expiresAt = gw.edge.blocklist!.get(flooder)!.expiresAt
    expect(refused.json()).toMatchObject({ errorCode: 'IP_BLOCKED', message: `Client address is blocked until ${new Date(expiresAt).toISOString()}` })
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(890)
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(900)

    for (const url of ['/health', '/health/', '/health?live=1', '/ready', '/ready/', '/metrics', '/metrics?x=1']) {
      expect((await get(url, flooder)).statusCode, url).not.toBe(403)
    }
    expect((await get('/health', flooder)).statusCode).toBe(200)
    expect((await get('/metrics', flooder)).body).toContain('flowgate_http_request_duration_seconds')

    const admin = { authorization: `Bearer ${createTokenService(config).sign({ sub: 'root', role: 'admin', root: true }).token}` }
    const list = await get('/admin/blocks', flooder, admin)
    expect(list.statusCode).toBe(200)
    expect(list.json().data.blocks).toEqual([expect.objectContaining({ address: flooder, expiresAt })])
    const lift = await gw.gateway.app.inject({ method: 'DELETE', url: `/admin/blocks/${flooder}`, remoteAddress: flooder, headers: admin })
    expect(lift.statusCode).toBe(200)
    // lifted (its bucket still refilling: 429 is the limiter, not the block)
    await waitFor('lifted', () => get('/docs', flooder), (r) => r.statusCode !== 403, 5000, 100)
    // one block, said once
    expect(sink.lines.filter((l) => l.msg === 'address blocked' && l.address === flooder)).toHaveLength(1)
  })
})
