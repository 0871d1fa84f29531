import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import type { FastifyRequest } from 'fastify'
import type { BlockEntry } from '../../schemas/events.js'
import type { Blocklist } from '../../server/edge/blocklist.js'
import type { Target } from '../../server/resolver.js'
import { createMemoryStore } from '../../server/edge/memory-store.js'
import { parseRouteLimits } from '../../server/edge/rate-limit.js'
import type { EventInput, EventPublisher } from '../../server/events/publisher.js'
import { captureLogs } from '../harness/stack.js'
import { edgeApp, testConfig } from './edge-app.js'

const config = testConfig({ rateLimitCapacity: 3, rateLimitRefillPerSec: 1 })

function recorder(): EventPublisher & { events: EventInput[] } {
  const events: EventInput[] = []
  return {
    source: 'gw-test',
    events,
    emit: (e) => void events.push(e),
    stats: () => ({ published: 0, dropped: { buffer_full: 0, publish_failed: 0, closed: 0 }, queued: 0, inFlight: 0, retried: 0 }),
    flush: async () => true,
    close: async () => {},
  }
}

/** Blocks that end an hour from the (faked) now. */
function fakeBlocklist(addresses: string[]): Blocklist & { lifted: string[] } {
  const lifted: string[] = []
  const entryOf = (address: string): BlockEntry => ({ v: 1, address, reason: 'test', blockedAt: Date.now(), expiresAt: Date.now() + 3_600_000 })
  return {
    lifted,
    isBlocked: (a) => addresses.includes(a),
    get: (a) => (addresses.includes(a) && !lifted.includes(a) ? entryOf(a) : undefined),
    list: () => addresses.map(entryOf),
    lift: async (a) => (lifted.push(a), addresses.includes(a)),
    ready: () => true,
    close: async () => {},
  }
}

describe('rate limit at the edge', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'))
  })
  afterEach(() => vi.useRealTimers())

  it('answers 429 with the envelope, Retry-After and RateLimit-* headers', async () => {
    const events = recorder()
    const app = await edgeApp(config, { store: createMemoryStore({ maxKeys: 100 }), events })
    const ok = []
    for (let i = 0; i < 3; i++) ok.push(await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.1' }))
    expect(ok.map((r) => r.statusCode)).toEqual([200, 200, 200])
    expect(ok.map((r) => r.headers['ratelimit-remaining'])).toEqual(['2', '1', '0'])
    expect(ok[0]!.headers['ratelimit-limit']).toBe('3')
    expect(ok[0]!.headers['ratelimit-reset']).toBe('1')

    const limited = await app.inject({ url: '/api/v1/things?x=1', remoteAddress: '198.51.100.1', headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })
    expect(limited.statusCode).toBe(429)
    expect(limited.json()).toEqual({
      success: false,
      status: 429,
      errorCode: 'RATE_LIMITED',
      message: 'Too many requests',
      traceId: '0af7651916cd43dd8448eb211c80319c',
    })
    expect(limited.headers['retry-after']).toBe('1')
    expect(limited.headers['ratelimit-limit']).toBe('3')
    expect(limited.headers['ratelimit-remaining']).toBe('0')
    expect(limited.headers['ratelimit-reset']).toBe('3')
    expect(limited.headers['x-trace-id']).toBe('0af7651916cd43dd8448eb211c80319c')
    // helmet's headers are on every answer, refusals included
    expect(limited.headers['x-content-type-options']).toBe('nosniff')

    const hits = events.events.filter((e) => e.kind === 'rate_limit.hit')
    expect(hits).toHaveLength(1)
    expect(hits[0]).toMatchObject({ kind: 'rate_limit.hit', address: '198.51.100.1', clientKey: '198.51.100.1', method: 'GET', capacity: 3, refillPerSec: 1 })
    expect(events.events.filter((e) => e.kind === 'request.completed')).toHaveLength(4)

    vi.advanceTimersByTime(1000)
    expect((await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.1' })).statusCode).toBe(200)
    await app.close()
  })

  it('refuses before the body is read: a limited or blocked caller gets 429/403, not a body error', async () => {
    const blocklist = fakeBlocklist(['198.51.100.70'])
    const app = await edgeApp(config, { store: createMemoryStore({ maxKeys: 100 }), blocklist })
    const bad = { method: 'POST' as const, url: '/api/v1/admin/login', headers: { 'content-type': 'application/json' }, payload: '{not json' }
    expect((await app.inject({ ...bad, remoteAddress: '198.51.100.70' })).json()).toMatchObject({ errorCode: 'IP_BLOCKED' })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await app.inject({ ...bad, remoteAddress: '198.51.100.71' })).statusCode)
    expect(statuses).toEqual([400, 400, 400, 429])
    await app.close()
  })

  it('ignores a spoofed X-Forwarded-For without a trusted proxy', async () => {
    const app = await edgeApp(config, { store: createMemoryStore({ maxKeys: 100 }) })
    const statuses = []
    for (let i = 0; i < 5; i++) {
      const r = await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.2', headers: { 'x-forwarded-for': `203.0.113.${i}` } })
      statuses.push(r.statusCode)
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429])
    await app.close()
  })

  it('honours X-Forwarded-For only from a trusted proxy', async () => {
    const trusted = testConfig({ rateLimitCapacity: 3, rateLimitRefillPerSec: 1, trustProxy: ['10.0.0.0/8'] })
    const app = await edgeApp(trusted, { store: createMemoryStore({ maxKeys: 100 }) })
    // Behind the proxy: each real client has its own bucket.
    for (let i = 0; i < 5; i++) {
      const r = await app.inject({ url: '/api/v1/things', remoteAddress: '10.1.2.3', headers: { 'x-forwarded-for': `203.0.113.${i}` } })
      expect(r.statusCode).toBe(200)
    }
    // The proxy cannot be bypassed by a client that sends the header itself from outside.
    const statuses = []
    for (let i = 0; i < 5; i++) {
      const r = await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.3', headers: { 'x-forwarded-for': `203.0.113.${i}` } })
      statuses.push(r.statusCode)
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429])
    // A client prepending a fake hop before the trusted proxy's own entry gains nothing either.
    const chain = []
    for (let i = 0; i < 4; i++) {
      const r = await app.inject({ url: '/api/v1/things', remoteAddress: '10.1.2.3', headers: { 'x-forwarded-for': `1.1.1.${i}, 203.0.113.50` } })
      chain.push(r.statusCode)
    }
    expect(chain).toEqual([200, 200, 200, 429])
    await app.close()
  })

  it('keys IPv6 clients by /64', async () => {
    const app = await edgeApp(config, { store: createMemoryStore({ maxKeys: 100 }) })
    const statuses = []
    for (let i = 1; i <= 4; i++) statuses.push((await app.inject({ url: '/api/v1/things', remoteAddress: `2001:db8:1:2::${i}` })).statusCode)
    expect(statuses).toEqual([200, 200, 200, 429])
    expect((await app.inject({ url: '/api/v1/things', remoteAddress: '2001:db8:1:3::1' })).statusCode).toBe(200)
    await app.close()
  })

  it('keys an authenticated caller by its token subject, not its address', async () => {
    const tokens = createTokenService(config)
    const app = await edgeApp(config, { store: createMemoryStore({ maxKeys: 100 }), tokens })
    const token = tokens.sign({ sub: 'client-1', role: 'client' }).token
    const statuses = []
    for (let i = 0; i < 4; i++) {
      const r = await app.inject({ url: '/api/v1/things', remoteAddress: `198.51.100.${10 + i}`, headers: { authorization: `Bearer ${token}` } })
      statuses.push(r.statusCode)
    }
    expect(statuses).toEqual([200, 200, 200, 429])
    // a garbage token falls back to the address
    const r = await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.30', headers: { authorization: 'Bearer nope' } })
    expect(r.statusCode).toBe(200)
    await app.close()
  })

  it('applies per-route limits and leaves ops endpoints unlimited', async () => {
    const perRoute = testConfig({ rateLimitCapacity: 100, rateLimitRefillPerSec: 1, rateLimitRoutes: ['POST /api/v1/admin/login=2:0.1'] })
    const app = await edgeApp(perRoute, { store: createMemoryStore({ maxKeys: 100 }) })
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await app.inject({ method: 'POST', url: '/api/v1/admin/login', remoteAddress: '198.51.100.4' })).statusCode)
    expect(statuses).toEqual([200, 200, 429])
    const limited = await app.inject({ method: 'POST', url: '/api/v1/admin/login', remoteAddress: '198.51.100.4' })
    expect(limited.headers['ratelimit-limit']).toBe('2')
    expect(limited.headers['retry-after']).toBe('10')
    // the global bucket of the same client is separate
    expect((await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.4' })).headers['ratelimit-limit']).toBe('100')
    for (let i = 0; i < 5; i++) {
      const h = await app.inject({ url: '/health', remoteAddress: '198.51.100.4' })
      expect(h.statusCode).toBe(200)
      expect(h.headers['ratelimit-limit']).toBeUndefined()
    }
    expect(() => parseRouteLimits(['GET /x'])).toThrow(/RATE_LIMIT_ROUTES/)
    expect(() => parseRouteLimits(['GET /x=0:1'])).toThrow(/RATE_LIMIT_ROUTES/)
    expect(() => parseRouteLimits(['flow:Bad Name=1:1', 'GET /y=1:0'])).toThrow(expect.objectContaining({ problems: expect.arrayContaining([expect.stringContaining('flow:Bad Name'), expect.stringContaining('GET /y')]) }))
    expect(parseRouteLimits(['flow:accounts.admin-login=5:0.1'])).toEqual([{ flow: 'accounts.admin-login', capacity: 5, refillPerSec: 0.1 }])
    await app.close()
  })

  it('applies a per-flow limit wherever the flow is bound, labelling the event with its route template', async () => {
    const perFlow = testConfig({ rateLimitCapacity: 100, rateLimitRefillPerSec: 1, rateLimitRoutes: ['flow:shop.things=2:0.5'] })
    const events = recorder()
    const things = { kind: 'flow', template: '/api/v1/things', params: {}, route: { flow: 'shop.things' } } as unknown as Target
    const resolve = (request: FastifyRequest) => (request.method === 'GET' && request.urlPath === '/api/v1/things' ? things : undefined)
    const app = await edgeApp(perFlow, { store: createMemoryStore({ maxKeys: 100 }), events, resolve })
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await app.inject({ url: '/api/v1/things?page=1', remoteAddress: '198.51.100.8' })).statusCode)
    expect(statuses).toEqual([200, 200, 429])
    expect(events.events.find((e) => e.kind === 'rate_limit.hit')).toMatchObject({ route: '/api/v1/things', capacity: 2, refillPerSec: 0.5 })
    // other routes keep the global limit
    expect((await app.inject({ method: 'POST', url: '/api/v1/admin/login', remoteAddress: '198.51.100.8' })).headers['ratelimit-limit']).toBe('100')
    await app.close()
  })

  it('refuses a blocked address with 403 IP_BLOCKED before the limiter', async () => {
    const blocklist = fakeBlocklist(['198.51.100.66'])
    const store = createMemoryStore({ maxKeys: 100 })
    const app = await edgeApp(config, { store, blocklist })
    const r = await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.66' })
    expect(r.statusCode).toBe(403)
    expect(r.json()).toMatchObject({ success: false, status: 403, errorCode: 'IP_BLOCKED' })
    expect(store.size()).toBe(0)
    expect((await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.67' })).statusCode).toBe(200)
    await app.close()
  })

  it('never refuses the ops endpoints: not blocked, not limited, with or without a trailing slash or query', async () => {
    const blocklist = fakeBlocklist(['198.51.100.90'])
    const store = createMemoryStore({ maxKeys: 100 })
    const app = await edgeApp(config, { store, blocklist })
    for (const url of ['/health', '/health/', '/health?probe=1', '/health/?probe=1', '/ready', '/ready/', '/ready?x', '/metrics', '/metrics/', '/metrics?name[]=up']) {
      for (let i = 0; i < 20; i++) {
        const r = await app.inject({ url, remoteAddress: '198.51.100.90' })
        expect(r.statusCode, url).toBe(200)
        expect(r.headers['ratelimit-limit']).toBeUndefined()
      }
    }
    expect(store.size()).toBe(0)
    // everything else stays refused for the blocked address
    expect((await app.inject({ url: '/docs', remoteAddress: '198.51.100.90' })).json()).toMatchObject({ errorCode: 'IP_BLOCKED' })
    expect((await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.90' })).statusCode).toBe(403)
    await app.close()
  })

  it('says until when an address is blocked, in the body and as Retry-After', async () => {
    const app = await edgeApp(config, { blocklist: fakeBlocklist(['198.51.100.91']) })
    const r = await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.91' })
    expect(r.statusCode).toBe(403)
    expect(r.headers['retry-after']).toBe('3600')
    expect(r.json()).toEqual({
      success: false,
      status: 403,
      errorCode: 'IP_BLOCKED',
      message: 'Client address is blocked until 2026-01-01T01:00:00.000Z',
      traceId: r.headers['x-trace-id'],
    })
    await app.close()
  })

  it('lets a valid admin token reach /admin/blocks from a blocked address, and nothing else', async () => {
    const tokens = createTokenService(config)
    const blocklist = fakeBlocklist(['198.51.100.92'])
    const app = await edgeApp(config, { store: createMemoryStore({ maxKeys: 100 }), blocklist, tokens })
    const from = { remoteAddress: '198.51.100.92' }
    const admin = { authorization: `Bearer ${tokens.sign({ sub: 'a1', role: 'admin' }).token}` }
    const customer = { authorization: `Bearer ${tokens.sign({ sub: 'c1', role: 'customer' }).token}` }
    const list = await app.inject({ url: '/admin/blocks', headers: admin, ...from })
    expect(list.statusCode).toBe(200)
    expect(list.json().data.blocks).toMatchObject([{ address: '198.51.100.92' }])
    const lift = await app.inject({ method: 'DELETE', url: '/admin/blocks/198.51.100.92', headers: admin, ...from })
    expect(lift.json()).toMatchObject({ success: true, data: { address: '198.51.100.92', lifted: true } })
    expect(blocklist.lifted).toEqual(['198.51.100.92'])
    // lifted: the address is served again
    expect((await app.inject({ url: '/api/v1/things', ...from })).statusCode).toBe(200)

    const still = fakeBlocklist(['198.51.100.93'])
    const other = await edgeApp(config, { blocklist: still, tokens })
    const at = { remoteAddress: '198.51.100.93' }
    for (const headers of [{}, customer, { authorization: 'Bearer forged' }]) {
      expect((await other.inject({ url: '/admin/blocks', headers, ...at })).json()).toMatchObject({ errorCode: 'IP_BLOCKED' })
    }
    // the admin's token opens /admin/blocks only
    expect((await other.inject({ url: '/api/v1/things', headers: admin, ...at })).json()).toMatchObject({ errorCode: 'IP_BLOCKED' })
    expect((await other.inject({ url: '/admin/blocksX', headers: admin, ...at })).json()).toMatchObject({ errorCode: 'IP_BLOCKED' })
    await app.close()
    await other.close()
  })

  it('warns once when X-Forwarded-For comes from a peer that is not a trusted proxy', async () => {
    const sink = captureLogs('warn')
    const app = await edgeApp(testConfig({ trustProxy: ['10.0.0.0/8'] }), {}, sink.log)
    await app.inject({ url: '/api/v1/things', remoteAddress: '10.1.1.1', headers: { 'x-forwarded-for': '203.0.113.1' } })
    await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.5' })
    expect(sink.lines).toEqual([])
    for (let i = 0; i < 3; i++) await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.5', headers: { 'x-forwarded-for': `203.0.113.${i}` } })
    expect(sink.lines).toHaveLength(1)
    expect(sink.lines[0]).toMatchObject({ level: 40, peer: '198.51.100.5', trustProxy: ['10.0.0.0/8'] })
    expect(String(sink.lines[0]!.msg)).toContain('add it to TRUST_PROXY')
    await app.close()
  })

  it('adds nothing when the limiter is off; CORS only when origins are configured', async () => {
    const off = await edgeApp(config)
    const r = await off.inject({ url: '/api/v1/things', headers: { origin: 'https://evil.example' } })
    expect(r.headers['ratelimit-limit']).toBeUndefined()
    expect(r.headers['access-control-allow-origin']).toBeUndefined()
    // helmet's API set, computed once, on every answer; none of the browser-page headers
    expect(r.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'")
    expect(r.headers['strict-transport-security']).toMatch(/max-age=/)
    expect(r.headers['x-frame-options']).toBe('DENY')
    expect(r.headers['x-content-type-options']).toBe('nosniff')
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.headers['referrer-policy']).toBe('no-referrer')
    for (const pageOnly of ['cross-origin-opener-policy', 'origin-agent-cluster', 'x-xss-protection', 'x-download-options', 'x-dns-prefetch-control']) {
      expect(r.headers[pageOnly]).toBeUndefined()
    }
    expect(r.headers['content-type']).toMatch(/application\/json/)
    await off.close()
    const withCors = await edgeApp(testConfig({ corsOrigins: ['https://app.example'] }))
    const allowed = await withCors.inject({ url: '/api/v1/things', headers: { origin: 'https://app.example' } })
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example')
    const other = await withCors.inject({ url: '/api/v1/things', headers: { origin: 'https://evil.example' } })
    expect(other.headers['access-control-allow-origin']).toBeUndefined()
    await withCors.close()
  })
})
