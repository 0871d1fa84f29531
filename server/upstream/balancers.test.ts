import { describe, expect, it } from 'vitest'
import { createBalancer, type Balanced } from './balancers.js'
import { PeakEwma, PENALTY_MS } from './ewma.js'

const target = (name: string, weight = 1): Balanced & { name: string } => ({ name, weight, active: 0, current: 0, ewma: new PeakEwma() })
const all = () => true
const names = (xs: Array<{ name: string } | undefined>) => xs.map((x) => x?.name).join('')

describe('balancers', () => {
  it('round robin takes each usable target in turn and skips unusable ones', () => {
    const b = createBalancer('round-robin')
    const ts = [target('a'), target('b'), target('c')]
    expect(names(Array.from({ length: 6 }, () => b.pick(ts, all)))).toBe('abcabc')
    expect(names(Array.from({ length: 4 }, () => b.pick(ts, (t) => t.name !== 'b')))).toBe('acac')
    expect(b.pick(ts, () => false)).toBeUndefined()
  })

  it('least connections takes the target with the fewest in flight, ties in turn', () => {
    const b = createBalancer('least-connections')
    const ts = [target('a'), target('b'), target('c')]
    ts[0]!.active = 3
    ts[1]!.active = 1
    ts[2]!.active = 2
    expect(b.pick(ts, all)?.name).toBe('b')
    for (const t of ts) t.active = 0
    expect(names([b.pick(ts, all), b.pick(ts, all), b.pick(ts, all)])).toBe('bca')
  })

  it("smooth weighted round robin interleaves 5:1:1 as nginx does (a a b a c a a), not in bursts", () => {
    const b = createBalancer('weighted-round-robin')
    const ts = [target('a', 5), target('b', 1), target('c', 1)]
    expect(names(Array.from({ length: 14 }, () => b.pick(ts, all)))).toBe('aabacaaaabacaa')
  })

  it('smooth weighted round robin keeps the proportions over the usable targets only', () => {
    const b = createBalancer('weighted-round-robin')
    const ts = [target('a', 2), target('b', 1), target('c', 5)]
    const counts: Record<string, number> = {}
    for (let i = 0; i < 300; i++) {
      const t = b.pick(ts, (x) => x.name !== 'c')!
      counts[t.name] = (counts[t.name] ?? 0) + 1
    }
    expect(counts).toEqual({ a: 200, b: 100 })
  })

  it('p2c over peak EWMA prefers the faster of two, and the less loaded at equal latency', () => {
    let now = 1_000_000
    const seq = [0.0, 0.0, 0.5, 0.9]
    let i = 0
    const b = createBalancer('p2c-ewma', { random: () => seq[i++ % seq.length]!, now: () => now })
    const fast = target('f')
    const slow = target('s')
    fast.ewma.observe(5, now)
    slow.ewma.observe(50, now)
    expect(b.pick([slow, fast], all)?.name).toBe('f')
    slow.ewma.observe(5, now) // a slower peak is kept, a faster sample pulls it down by time weight only
    expect(slow.ewma.estimate(now)).toBe(50)
    now += 30_000
    // 30 s later both decayed by the same factor: load decides.
    fast.active = 10
    expect(b.pick([slow, fast], all)?.name).toBe('s')
  })

  it('p2c never picks an unusable target and handles one or none usable', () => {
    const b = createBalancer('p2c-ewma')
    const ts = [target('a'), target('b'), target('c')]
    for (let i = 0; i < 50; i++) expect(b.pick(ts, (t) => t.name !== 'b')?.name).not.toBe('b')
    expect(b.pick(ts, (t) => t.name === 'c')?.name).toBe('c')
    expect(b.pick(ts, () => false)).toBeUndefined()
  })
})

describe('peak EWMA', () => {
  it('takes a slower sample at once and a faster one by the time since the last', () => {
    const e = new PeakEwma(10_000)
    e.observe(10, 1000)
    e.observe(100, 1000)
    expect(e.estimate(1000)).toBe(100)
    e.observe(0, 1000 + 10_000) // one decay period later: weight e^-1 on the old value
    expect(e.estimate(11_000)).toBeCloseTo(100 * Math.exp(-1), 6)
  })

  it('costs latency × (in flight + 1); an unmeasured busy target costs the penalty', () => {
    const e = new PeakEwma()
    expect(e.cost(0, 5)).toBe(0)
    expect(e.cost(2, 5)).toBe(PENALTY_MS + 2)
    e.observe(20, 5)
    expect(e.cost(3, 5)).toBe(80)
  })
})
