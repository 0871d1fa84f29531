// Peak EWMA of a target's latency (Finagle's PeakEwma, also Envoy's and linkerd's): a slower answer
// than the estimate replaces it at once (the peak), a faster one pulls it down with a weight that
// depends on the time since the last observation, and an idle target's estimate decays towards
// zero so it is tried again. Pure: the clock is passed in.

/** Cost of a target that has requests in flight but no measurement yet (Finagle's penalty): try others first. */
export const PENALTY_MS = 1e6

export class PeakEwma {
  /** Milliseconds. */
  private value = 0
  private stamp = 0

  constructor(private readonly decayMs = 10_000) {}

  observe(rttMs: number, nowMs: number): void {
    if (this.stamp === 0) {
      this.value = rttMs
    } else {
      const w = Math.exp(-Math.max(0, nowMs - this.stamp) / this.decayMs)
      this.value = rttMs > this.value ? rttMs : this.value * w + rttMs * (1 - w)
    }
    this.stamp = nowMs
  }

  /** The estimate now, decayed by the time since the last observation. */
  estimate(nowMs: number): number {
    if (this.stamp === 0) return 0
    return this.value * Math.exp(-Math.max(0, nowMs - this.stamp) / this.decayMs)
  }

  /** What sending one more request costs: latency times the requests it would queue behind. */
  cost(active: number, nowMs: number): number {
    const rtt = this.estimate(nowMs)
    if (rtt === 0) return active === 0 ? 0 : PENALTY_MS + active
    return rtt * (active + 1)
  }
}
