// Whether a failed attempt is tried again, and when. Pure: the clock and the random source are
// passed in. Envoy's rules: idempotent methods only unless the route says otherwise, another
// target each time, full-jitter backoff, a retry budget (retries in flight at most a share of the
// requests in flight, with a floor), and never past the request's deadline.
import { IDEMPOTENT, type UpstreamSpec } from './spec.js'

export type RetrySettings = UpstreamSpec['retry']

/** What went wrong with one attempt. */
export type Failure = 'connect' | 'timeout' | 'broken' | 'status'

export interface RetryInput {
  method: string
  retryNonIdempotent: boolean
  /** What the route kind knows of the request (a GraphQL query or mutation); overrides the method's idempotence. */
  safe?: boolean
  /** Attempts made so far (1 after the first). */
  attempts: number
  failure: Failure
  /** The upstream's status, for `status`. */
  status?: number
  /** Whether the request body can be sent again (none, or all of it held in the replay buffer). */
  replayable: boolean
  /** A usable target not tried yet exists. */
  otherTarget: boolean
  budgetAllows: boolean
  nowMs: number
  deadlineMs: number
  /** The backoff this retry would wait. */
  backoffMs: number
}

export type RetryDecision = { retry: true } | { retry: false; reason: 'method' | 'failure' | 'attempts' | 'body' | 'no_target' | 'budget' | 'deadline' }

export function decideRetry(cfg: RetrySettings, r: RetryInput): RetryDecision {
  if (r.attempts > cfg.retries) return { retry: false, reason: 'attempts' }
  if (!(r.safe ?? (r.retryNonIdempotent || IDEMPOTENT.has(r.method)))) return { retry: false, reason: 'method' }
  if (r.failure === 'status' && !cfg.statuses.has(r.status ?? 0)) return { retry: false, reason: 'failure' }
  if (!r.replayable) return { retry: false, reason: 'body' }
  if (!r.otherTarget) return { retry: false, reason: 'no_target' }
  // Waiting the backoff and then at least a millisecond of a try must fit before the deadline.
  if (r.nowMs + r.backoffMs + 1 >= r.deadlineMs) return { retry: false, reason: 'deadline' }
  if (!r.budgetAllows) return { retry: false, reason: 'budget' }
  return { retry: true }
}

/** Full jitter (AWS architecture blog): uniform in [0, min(max, base × 2^(retry-1))). */
export function backoffMs(retry: number, cfg: Pick<RetrySettings, 'backoffBaseMs' | 'backoffMaxMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(cfg.backoffMaxMs, cfg.backoffBaseMs * 2 ** Math.max(0, retry - 1))
  return Math.floor(random() * ceiling)
}

/** Envoy's retry budget: retries in flight may be `percent` of the requests in flight, and at least `min`. */
export class RetryBudget {
  active = 0
  retrying = 0

  allows(cfg: Pick<RetrySettings, 'budgetPercent' | 'minRetryConcurrency'>): boolean {
    return this.retrying < Math.max(cfg.minRetryConcurrency, (this.active * cfg.budgetPercent) / 100)
  }
}
