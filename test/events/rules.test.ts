import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../lib/config.js'
import { createRules } from '../../events/rules.js'
import { decodeEvent, decodeBlockEntry, type RateLimitHit, type RequestCompleted } from '../../schemas/events.js'

const config = parseConfig({ autoBlockHits: 5, autoBlockWindowSec: 60, autoBlockTtlSec: 900, latencySpikeFactor: 3, latencyWindow: 50 })
const T0 = Date.parse('2026-01-01T00:00:00Z')

function hit(n: number, address = '203.0.113.9', tsMs = T0 + n * 1000): RateLimitHit {
  return {
    v: 1, id: `gw-a-${n}`, ts: tsMs, source: 'gw-a', kind: 'rate_limit.hit', requestId: `r${n}`, traceId: 'a'.repeat(32),
    method: 'GET', route: '/api/v1/things', clientKey: address, address, capacity: 10, refillPerSec: 2,
  }
}

function completed(n: number, latencyMs: number, route = '/api/v1/things'): RequestCompleted {
  return {
    v: 1, id: `gw-a-c${n}`, ts: T0 + n, source: 'gw-a', kind: 'request.completed', requestId: `r${n}`, traceId: 'b'.repeat(32),
    method: 'GET', route, clientKey: '198.51.100.1', address: '198.51.100.1', status: 200, latencyMs, startedAt: T0 + n,
  }
}

describe('auto-block rule', () => {
  it('blocks an address on its 5th hit within the window, for the TTL', () => {
    const rules = createRules(config)
    for (let i = 0; i < 4; i++) expect(rules.handle(hit(i), T0)).toEqual([])
    const actions = rules.handle(hit(4), T0)
    expect(actions).toEqual([
      {
        type: 'block',
        cause: 'gw-a-4',
        entry: { v: 1, address: '203.0.113.9', reason: '5 rate-limit hits within 60s', blockedAt: T0 + 4000, expiresAt: T0 + 4000 + 900_000 },
      },
    ])
  })

  it('does not count hits outside the window', () => {
    const rules = createRules(config)
    for (let i = 0; i < 4; i++) rules.handle(hit(i), T0)
    expect(rules.handle(hit(100, undefined, T0 + 61_000), T0)).toEqual([])
  })

  it('counts a redelivered hit once and derives the same block from the same events', () => {
    const rules = createRules(config)
    for (let i = 0; i < 4; i++) {
      rules.handle(hit(i), T0)
      rules.handle(hit(i), T0) // redelivered
    }
    const first = rules.handle(hit(4), T0)
    expect(first).toHaveLength(1)
    // after a restart, the same events give the same block value (an idempotent KV write)
    const restarted = createRules(config)
    for (let i = 0; i < 4; i++) restarted.remember(hit(i))
    expect(restarted.handle(hit(4), T0)).toEqual(first)
    // hits already answered by the block do not block again
    expect(rules.handle(hit(5), T0)).toEqual([])
  })

  it('skips a block that would already be over (a replay of old events)', () => {
    const rules = createRules(config)
    for (let i = 0; i < 4; i++) rules.handle(hit(i), T0)
    expect(rules.handle(hit(4), T0 + 10_000_000)).toEqual([])
  })

  it('never blocks an address in AUTOBLOCK_EXEMPT (loopback by default in development)', () => {
    expect(parseConfig({ nodeEnv: 'development' }).autoBlockExempt).toEqual(['127.0.0.0/8', '::1'])
    expect(parseConfig({ nodeEnv: 'production', jwtSecret: 'x'.repeat(32) }).autoBlockExempt).toEqual([])
    const rules = createRules(parseConfig({ ...config, autoBlockExempt: ['127.0.0.0/8', '::1', '10.0.0.0/8', '2001:db8:aa::/48'] }))
    for (const address of ['127.0.0.1', '10.20.30.40', '0:0:0:0::/64', '2001:db8:aa:1::/64']) {
      for (let i = 0; i < 20; i++) expect(rules.handle(hit(i, address), T0)).toEqual([])
    }
    for (let i = 0; i < 4; i++) rules.handle(hit(i, '11.0.0.1'), T0)
    expect(rules.handle(hit(4, '11.0.0.1'), T0)).toHaveLength(1)
  })

  it('refuses an AUTOBLOCK_EXEMPT entry that is not an address or CIDR', () => {
    expect(() => parseConfig({ autoBlockExempt: ['10.0.0.0/8', 'localhost', '1.2.3.4/40'] })).toThrow(/AUTOBLOCK_EXEMPT: "localhost".*\n.*AUTOBLOCK_EXEMPT: "1.2.3.4\/40"/s)
    expect(parseConfig({ nodeEnv: 'development', autoBlockExempt: ['none'] }).autoBlockExempt).toEqual([])
  })

  it('keeps addresses apart', () => {
    const rules = createRules(config)
    for (let i = 0; i < 4; i++) rules.handle(hit(i, '203.0.113.1'), T0)
    expect(rules.handle(hit(4, '203.0.113.2'), T0)).toEqual([])
  })
})

describe('alert rules', () => {
  it('raises a latency spike above 3x the rolling mean, once per event', () => {
    const rules = createRules(config)
    for (let i = 0; i < 50; i++) expect(rules.handle(completed(i, 10))).toEqual([])
    expect(rules.handle(completed(50, 29))).toEqual([])
    const spike = completed(51, 100)
    const actions = rules.handle(spike)
    expect(actions).toHaveLength(1)
    expect(actions[0]).toMatchObject({ type: 'alert', alert: { kind: 'latency_spike', cause: spike.id, details: { route: '/api/v1/things' } } })
    expect(rules.handle(spike)).toEqual([]) // redelivered
    // another route has its own mean
    expect(rules.handle(completed(52, 100, '/api/v1/other'))).toEqual([])
  })

  it('stays quiet below LATENCY_SPIKE_MIN_MS (100 ms by default), however many times the mean', () => {
    const rules = createRules(config)
    for (let i = 0; i < 50; i++) rules.handle(completed(i, 0.25))
    expect(rules.handle(completed(50, 2.8))).toEqual([])
    expect(rules.handle(completed(51, 99.9))).toEqual([])
    expect(rules.handle(completed(52, 100))).toHaveLength(1)
    const lowFloor = createRules(parseConfig({ ...config, latencySpikeMinMs: 1 }))
    for (let i = 0; i < 50; i++) lowFloor.handle(completed(i, 0.25))
    expect(lowFloor.handle(completed(50, 2.8))).toHaveLength(1)
  })

  it('turns an opened circuit into an alert', () => {
    const rules = createRules(config)
    const actions = rules.handle({ v: 1, id: 'gw-a-9', ts: T0, source: 'gw-a', kind: 'circuit.opened', upstream: 'orders', reason: '5 failures' })
    expect(actions).toEqual([
      { type: 'alert', alert: { v: 1, kind: 'circuit_opened', cause: 'gw-a-9', ts: T0, message: 'circuit opened for orders: 5 failures', details: { upstream: 'orders', source: 'gw-a' } } },
    ])
  })
})

describe('event decoding', () => {
  const bytes = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v))

  it('accepts a valid event', () => {
    expect(decodeEvent(bytes(hit(1)))).toEqual({ ok: true, value: hit(1) })
  })

  it('says why it refuses an event', () => {
    expect(decodeEvent(bytes('{nope'))).toEqual({ ok: false, reason: 'malformed JSON' })
    expect(decodeEvent(bytes('[1]'))).toEqual({ ok: false, reason: 'not a JSON object' })
    expect(decodeEvent(bytes({ ...hit(1), v: 2 }))).toEqual({ ok: false, reason: 'unknown version 2' })
    expect(decodeEvent(bytes({ ...hit(1), v: undefined }))).toEqual({ ok: false, reason: 'unknown version undefined' })
    const bad = decodeEvent(bytes({ ...hit(1), kind: 'something.else' }))
    expect(bad.ok).toBe(false)
    expect(decodeBlockEntry(bytes({ v: 1, address: 'x' })).ok).toBe(false)
  })
})
