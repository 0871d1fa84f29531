import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryStore } from '../../server/edge/memory-store.js'
import { idleMs, takeToken } from '../../server/edge/token-bucket.js'

const limit = { capacity: 10, refillPerSec: 2 }

describe('token bucket', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'))
  })
  afterEach(() => vi.useRealTimers())

  it('allows capacity requests at once, then refuses with Retry-After', () => {
    const store = createMemoryStore({ maxKeys: 100 })
    const decisions = Array.from({ length: 11 }, () => store.take('a', limit))
    expect(decisions.slice(0, 10).every((d) => d.allowed)).toBe(true)
    expect(decisions.map((d) => d.remaining).slice(0, 10)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    const refused = decisions[10]!
    expect(refused).toEqual({ allowed: false, remaining: 0, resetSec: 5, retryAfterSec: 1 })
  })

  it('refills refillPerSec tokens per second, never above capacity', () => {
    const store = createMemoryStore({ maxKeys: 100 })
    for (let i = 0; i < 10; i++) store.take('a', limit)
    expect(store.take('a', limit).allowed).toBe(false)
    vi.advanceTimersByTime(499)
    expect(store.take('a', limit).allowed).toBe(false)
    vi.advanceTimersByTime(1)
    // 500 ms at 2/s is one token
    expect(store.take('a', limit)).toMatchObject({ allowed: true, remaining: 0 })
    vi.advanceTimersByTime(60_000)
    expect(store.take('a', limit)).toMatchObject({ allowed: true, remaining: 9 })
  })

  it('keeps buckets apart by key', () => {
    const store = createMemoryStore({ maxKeys: 100 })
    for (let i = 0; i < 10; i++) store.take('a', limit)
    expect(store.take('a', limit).allowed).toBe(false)
    expect(store.take('b', limit).allowed).toBe(true)
  })

  it('computes fractional refills exactly (pure function)', () => {
    const state = { tokens: 0, updatedMs: 0 }
    expect(takeToken(state, { capacity: 3, refillPerSec: 0.5 }, 1000)).toMatchObject({ allowed: false, retryAfterSec: 1 })
    expect(takeToken(state, { capacity: 3, refillPerSec: 0.5 }, 2000)).toMatchObject({ allowed: true, remaining: 0 })
    expect(state.tokens).toBeCloseTo(0)
    expect(idleMs({ capacity: 10, refillPerSec: 2 })).toBe(5000)
  })

  it('sweeps idle buckets once they would be full again', () => {
    const store = createMemoryStore({ maxKeys: 100 })
    store.take('a', limit)
    vi.advanceTimersByTime(3000)
    store.take('b', limit)
    vi.advanceTimersByTime(2000)
    expect(store.sweep()).toBe(1)
    expect(store.size()).toBe(1)
    vi.advanceTimersByTime(10_000)
    expect(store.size()).toBe(0) // the periodic sweep ran
  })
})

describe('memory store under a flood of distinct addresses', () => {
  it('stays bounded by maxKeys with 100,000 addresses and keeps the active client limited', async () => {
    const store = createMemoryStore({ maxKeys: 1000 })
    const before = process.memoryUsage().heapUsed
    for (let i = 0; i < 10; i++) store.take('victim', limit)
    for (let i = 0; i < 100_000; i++) {
      store.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, limit)
      if (i % 100 === 0) store.take('victim', limit) // an active client stays recent, so it is not evicted
      expect(store.size()).toBeLessThanOrEqual(1000)
    }
    expect(store.size()).toBe(1000)
    expect(store.take('victim', limit).allowed).toBe(false)
    // 1000 small buckets; generous bound so GC timing cannot make it flaky, far below 100k buckets.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(40 * 1024 * 1024)
    await store.close()
  })
})
