// An upstream as one services-file generation declares it: its settings, its balancer, its retry
// budget and its current targets (the file's plus those its discovery source reports, replaced as a
// whole list, so a request already picking never sees a half-updated one).
import { createBalancer, type Balancer } from './balancers.js'
import { isEjected, maxEjected, recordFailure, recordSuccess } from './outlier.js'
import { RetryBudget } from './retry.js'
import type { UpstreamSpec } from './spec.js'
import type { UpstreamTarget } from './target.js'

export class Upstream {
  readonly name: string
  readonly balancer: Balancer
  readonly budget = new RetryBudget()
  targets: readonly UpstreamTarget[] = []

  constructor(readonly spec: UpstreamSpec, balancer?: Balancer) {
    this.name = spec.name
    this.balancer = balancer ?? createBalancer(spec.balancer)
  }

  /** Whether `t` may take a request now (besides not having been tried for it). */
  usable(t: UpstreamTarget, nowMs: number): boolean {
    return t.healthy && !isEjected(t.ejection, nowMs) && t.active < this.spec.maxPending && t.breaker.allows()
  }

  /** The balancer's choice among usable targets not in `tried`. */
  pick(tried: readonly UpstreamTarget[] | undefined, nowMs: number): UpstreamTarget | undefined {
    const usable = tried === undefined || tried.length === 0
      ? (t: UpstreamTarget) => this.usable(t, nowMs)
      : (t: UpstreamTarget) => !tried.includes(t) && this.usable(t, nowMs)
    return this.balancer.pick(this.targets, usable)
  }

  /** Whether a usable target outside `tried` exists (a retry has somewhere to go). */
  hasOther(tried: readonly UpstreamTarget[], nowMs: number): boolean {
    for (const t of this.targets) if (!tried.includes(t) && this.usable(t, nowMs)) return true
    return false
  }

  /** One finished call's outcome in the target's counters and ejection state: how long it is now ejected for (0 when it is not). */
  recordOutcome(t: UpstreamTarget, failed: boolean, nowMs: number): number {
    t.handled++
    if (!failed) {
      recordSuccess(t.ejection)
      return 0
    }
    t.failures++
    return recordFailure(t.ejection, this.spec.outlier, nowMs, this.targets.length, this.ejectedCount(nowMs))
  }

  ejectedCount(nowMs: number): number {
    let n = 0
    for (const t of this.targets) if (isEjected(t.ejection, nowMs)) n++
    return n
  }

  /** How many targets may be ejected at once (never more than the configured share). */
  ejectionRoom(nowMs: number): boolean {
    return this.ejectedCount(nowMs) < maxEjected(this.targets.length, this.spec.outlier)
  }
}
