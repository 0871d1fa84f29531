import { describe, expect, it } from 'vitest'
import { backoffMs, decideRetry, RetryBudget, type RetryInput } from './retry.js'

const cfg = { retries: 2, statuses: new Set([502, 503, 504]), backoffBaseMs: 25, backoffMaxMs: 250, budgetPercent: 20, minRetryConcurrency: 3, bufferBytes: 65536 }
const base: RetryInput = {
  method: 'GET',
  retryNonIdempotent: false,
  attempts: 1,
  failure: 'connect',
  replayable: true,
  otherTarget: true,
  budgetAllows: true,
  nowMs: 0,
  deadlineMs: 1000,
  backoffMs: 10,
}

describe('retry decisions', () => {
  it('retries an idempotent request that failed to connect, timed out or got a listed status', () => {
    expect(decideRetry(cfg, base)).toEqual({ retry: true })
    expect(decideRetry(cfg, { ...base, failure: 'timeout', method: 'PUT' })).toEqual({ retry: true })
    expect(decideRetry(cfg, { ...base, failure: 'status', status: 503 })).toEqual({ retry: true })
    expect(decideRetry(cfg, { ...base, failure: 'status', status: 500 })).toEqual({ retry: false, reason: 'failure' })
  })

  it('never retries a POST or PATCH unless the route says so', () => {
    expect(decideRetry(cfg, { ...base, method: 'POST' })).toEqual({ retry: false, reason: 'method' })
    expect(decideRetry(cfg, { ...base, method: 'PATCH' })).toEqual({ retry: false, reason: 'method' })
    expect(decideRetry(cfg, { ...base, method: 'POST', retryNonIdempotent: true })).toEqual({ retry: true })
  })

  it('lets the route kind decide when it knows better than the method (a GraphQL query or mutation)', () => {
    expect(decideRetry(cfg, { ...base, method: 'POST', safe: true })).toEqual({ retry: true })
    expect(decideRetry(cfg, { ...base, method: 'POST', retryNonIdempotent: true, safe: false })).toEqual({ retry: false, reason: 'method' })
    expect(decideRetry(cfg, { ...base, method: 'GET', safe: false })).toEqual({ retry: false, reason: 'method' })
  })

  it('stops at the attempt limit, an unreplayable body, no other target, the budget and the deadline', () => {
    expect(decideRetry(cfg, { ...base, attempts: 3 })).toEqual({ retry: false, reason: 'attempts' })
    expect(decideRetry(cfg, { ...base, replayable: false })).toEqual({ retry: false, reason: 'body' })
    expect(decideRetry(cfg, { ...base, otherTarget: false })).toEqual({ retry: false, reason: 'no_target' })
    expect(decideRetry(cfg, { ...base, budgetAllows: false })).toEqual({ retry: false, reason: 'budget' })
    expect(decideRetry(cfg, { ...base, nowMs: 990, backoffMs: 9 })).toEqual({ retry: false, reason: 'deadline' })
    expect(decideRetry(cfg, { ...base, nowMs: 980, backoffMs: 9 })).toEqual({ retry: true })
  })

  it('backs off with full jitter under a doubling ceiling', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, cfg, () => 0.999999))).toEqual([24, 49, 99, 199, 249])
    expect(backoffMs(3, cfg, () => 0)).toBe(0)
    expect(backoffMs(1, cfg, () => 0.5)).toBe(12)
  })

  it("budgets retries at 20% of requests in flight, at least 3 (Envoy's defaults)", () => {
    const b = new RetryBudget()
    b.active = 10
    b.retrying = 2
    expect(b.allows(cfg)).toBe(true)
    b.retrying = 3
    expect(b.allows(cfg)).toBe(false)
    b.active = 100
    b.retrying = 19
    expect(b.allows(cfg)).toBe(true)
    b.retrying = 20
    expect(b.allows(cfg)).toBe(false)
  })
})
