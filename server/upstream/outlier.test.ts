import { describe, expect, it } from 'vitest'
import { ejectionMs, isEjected, maxEjected, newEjectionState, recordFailure, recordSuccess } from './outlier.js'

const cfg = { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 8000, maxEjectedPercent: 50 }

describe('outlier ejection', () => {
  it('ejects after N consecutive failures; a success resets the streak', () => {
    const s = newEjectionState()
    expect(recordFailure(s, cfg, 0, 4, 0)).toBe(0)
    expect(recordFailure(s, cfg, 0, 4, 0)).toBe(0)
    recordSuccess(s)
    expect(recordFailure(s, cfg, 0, 4, 0)).toBe(0)
    expect(recordFailure(s, cfg, 0, 4, 0)).toBe(0)
    expect(recordFailure(s, cfg, 100, 4, 0)).toBe(1000)
    expect(isEjected(s, 1099)).toBe(true)
    expect(isEjected(s, 1100)).toBe(false)
  })

  it('grows the ejection each time (base × 2^(k-1)), up to the maximum', () => {
    expect([1, 2, 3, 4, 5, 6].map((k) => ejectionMs(k, cfg))).toEqual([1000, 2000, 4000, 8000, 8000, 8000])
    const s = newEjectionState()
    let now = 0
    const lengths: number[] = []
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3; i++) {
        const ms = recordFailure(s, cfg, now, 4, 0)
        if (ms > 0) lengths.push(ms)
      }
      now = s.ejectedUntil
    }
    expect(lengths).toEqual([1000, 2000, 4000, 8000])
  })

  it('starts from the base again after a quiet maxEjectionMs', () => {
    const s = newEjectionState()
    for (let i = 0; i < 3; i++) recordFailure(s, cfg, 0, 4, 0)
    for (let i = 0; i < 3; i++) recordFailure(s, cfg, 1000, 4, 0)
    expect(s.ejectedUntil).toBe(3000)
    for (let i = 0; i < 3; i++) recordFailure(s, cfg, 3000 + 8001, 4, 0)
    expect(s.ejectedUntil - 11_001).toBe(1000)
  })

  it('never ejects more than half of a pool (none of a pool of one)', () => {
    expect(maxEjected(1, cfg)).toBe(0)
    expect(maxEjected(2, cfg)).toBe(1)
    expect(maxEjected(5, cfg)).toBe(2)
    const s = newEjectionState()
    for (let i = 0; i < 10; i++) expect(recordFailure(s, cfg, 0, 2, 1)).toBe(0)
    expect(isEjected(s, 0)).toBe(false)
  })
})
