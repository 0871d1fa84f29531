// One opossum circuit breaker per target. Each attempt is one call: a 5xx answer, a connection
// error or a timeout is a failure; a caller that went away is neither. An open breaker fails fast and
// its target is skipped by the balancer; after resetTimeoutMs one trial call is let through
// (half-open). Only state changes are reported: opened when a closed breaker opens, closed when it
// closes again (a failed trial re-opening a half-open breaker is the same outage, not a new one).
import CircuitBreaker from 'opossum'
import type { UpstreamSpec } from './spec.js'

export type BreakerState = 'closed' | 'open' | 'half_open'
/** The gauge's value per state. */
export const STATE_VALUE: Record<BreakerState, number> = { closed: 0, open: 1, half_open: 2 }

export type BreakerSettings = UpstreamSpec['breaker']

/** Rejections opossum makes itself, before calling the target. */
export const OPEN_BREAKER = 'EOPENBREAKER'

/** Marks an outcome that says nothing about the target (the client went away). */
export class NotTheTargetsFault extends Error {
  override readonly name = 'NotTheTargetsFault'
}

export interface TargetBreaker {
  /** Runs one call through the breaker; rejects with code EOPENBREAKER when open. */
  run(call: () => Promise<void>): Promise<void>
  /** Whether a call would be let through now. */
  allows(): boolean
  state(): BreakerState
  stats(): { state: BreakerState; fires: number; successes: number; failures: number; rejects: number; opened: number }
  shutdown(): void
}

export type Transition = { to: 'opened'; reason: string } | { to: 'closed' }

/** The state opossum's flags describe. */
export function stateOf(b: { opened: boolean; halfOpen: boolean }): BreakerState {
  return b.halfOpen ? 'half_open' : b.opened ? 'open' : 'closed'
}

const run = (call: () => Promise<void>) => call()

export function createBreaker(cfg: BreakerSettings, onTransition: (t: Transition) => void): TargetBreaker {
  if (!cfg.enabled) {
    return {
      run,
      allows: () => true,
      state: () => 'closed',
      stats: () => ({ state: 'closed', fires: 0, successes: 0, failures: 0, rejects: 0, opened: 0 }),
      shutdown() {},
    }
  }
  const breaker = new CircuitBreaker(run, {
    timeout: false, // attempts carry their own per-try timeout (undici's headersTimeout)
    errorThresholdPercentage: cfg.errorThresholdPercent,
    volumeThreshold: cfg.volumeThreshold,
    resetTimeout: cfg.resetTimeoutMs,
    rollingCountTimeout: cfg.windowMs,
    rollingCountBuckets: 10,
    rollingPercentilesEnabled: false, // it would keep every latency of the window
    enableSnapshots: false,
    errorFilter: (err: unknown) => err instanceof NotTheTargetsFault,
  })
  let lastFailure = ''
  let reportedOpen = false
  let opened = 0
  breaker.on('failure', (err: unknown) => {
    lastFailure = err instanceof Error ? err.message.slice(0, 200) : String(err)
  })
  breaker.on('open', () => {
    if (reportedOpen) return
    reportedOpen = true
    opened++
    onTransition({ to: 'opened', reason: lastFailure })
  })
  breaker.on('close', () => {
    if (!reportedOpen) return
    reportedOpen = false
    onTransition({ to: 'closed' })
  })
  return {
    run: (call) => breaker.fire(call) as Promise<void>,
    allows: () => breaker.closed || breaker.pendingClose,
    state: () => stateOf(breaker),
    stats() {
      const s = breaker.stats
      return { state: stateOf(breaker), fires: s.fires, successes: s.successes, failures: s.failures, rejects: s.rejects, opened }
    },
    shutdown: () => breaker.shutdown(),
  }
}
