import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createBreaker, NotTheTargetsFault, OPEN_BREAKER, stateOf, type Transition } from './breaker.js'

const cfg = { enabled: true, errorThresholdPercent: 50, volumeThreshold: 4, resetTimeoutMs: 1000, windowMs: 10_000 }
const ok = () => Promise.resolve()
const bad = () => Promise.reject(new Error('upstream answered 503'))

describe('target breaker', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('maps opossum flags to one state', () => {
    expect(stateOf({ opened: false, halfOpen: false })).toBe('closed')
    expect(stateOf({ opened: true, halfOpen: false })).toBe('open')
    expect(stateOf({ opened: false, halfOpen: true })).toBe('half_open')
  })

  it('opens past the threshold, fails fast, lets one trial through after the reset timeout, closes on success', async () => {
    const seen: Transition[] = []
    const b = createBreaker(cfg, (t) => seen.push(t))
    await b.run(ok)
    for (let i = 0; i < 3; i++) await b.run(bad).catch(() => {})
    expect(b.state()).toBe('open')
    expect(b.allows()).toBe(false)
    await expect(b.run(ok)).rejects.toMatchObject({ code: OPEN_BREAKER })
    vi.advanceTimersByTime(1000)
    expect(b.state()).toBe('half_open')
    expect(b.allows()).toBe(true)
    await b.run(ok)
    expect(b.state()).toBe('closed')
    expect(seen).toEqual([{ to: 'opened', reason: 'upstream answered 503' }, { to: 'closed' }])
    expect(b.stats()).toMatchObject({ state: 'closed', opened: 1, rejects: 1 })
    b.shutdown()
  })

  it('reports one opening for one outage: a failed trial re-opens without a second event', async () => {
    const seen: Transition[] = []
    const b = createBreaker(cfg, (t) => seen.push(t))
    for (let i = 0; i < 4; i++) await b.run(bad).catch(() => {})
    vi.advanceTimersByTime(1000)
    await b.run(bad).catch(() => {})
    expect(b.state()).toBe('open')
    vi.advanceTimersByTime(1000)
    await b.run(ok)
    expect(seen.map((t) => t.to)).toEqual(['opened', 'closed'])
    b.shutdown()
  })

  it('does not count a call the client abandoned', async () => {
    const b = createBreaker(cfg, () => {})
    for (let i = 0; i < 10; i++) await b.run(() => Promise.reject(new NotTheTargetsFault('client went away'))).catch(() => {})
    expect(b.state()).toBe('closed')
    b.shutdown()
  })
})
