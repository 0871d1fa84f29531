// Passive outlier ejection (Envoy's consecutive-failure detector): a target that fails N times in a
// row is taken out of its pool for base × 2^(k-1) (k = its ejections lately), at most maxEjectionMs,
// and never when that would leave more than maxEjectedPercent of the pool out. A target that stays
// clear of ejection for maxEjectionMs starts from base again. Pure: the clock is passed in.
import type { UpstreamSpec } from './spec.js'

export type OutlierSettings = UpstreamSpec['outlier']

export interface EjectionState {
  consecutiveFailures: number
  /** Epoch ms until which the target is out (0: in). */
  ejectedUntil: number
  /** Ejections counted for the growing duration. */
  ejections: number
  lastEjectedAt: number
  /** Ejections ever (for stats). */
  totalEjections: number
}

export function newEjectionState(): EjectionState {
  return { consecutiveFailures: 0, ejectedUntil: 0, ejections: 0, lastEjectedAt: 0, totalEjections: 0 }
}

export function isEjected(s: EjectionState, nowMs: number): boolean {
  return s.ejectedUntil > nowMs
}

export function ejectionMs(ejections: number, cfg: OutlierSettings): number {
  return Math.min(cfg.maxEjectionMs, cfg.baseEjectionMs * 2 ** Math.max(0, ejections - 1))
}

/** How many of a pool of `size` may be out at once. */
export function maxEjected(size: number, cfg: OutlierSettings): number {
  return Math.floor((size * cfg.maxEjectedPercent) / 100)
}

export function recordSuccess(s: EjectionState): void {
  s.consecutiveFailures = 0
}

/**
 * Counts a failure; ejects when the streak reaches the threshold and the pool can spare the target
 * (`ejectedNow`: how many of its pool are out now). Returns the ejection's length, or 0.
 */
export function recordFailure(s: EjectionState, cfg: OutlierSettings, nowMs: number, poolSize: number, ejectedNow: number): number {
  s.consecutiveFailures++
  if (s.consecutiveFailures < cfg.consecutiveFailures || isEjected(s, nowMs)) return 0
  if (ejectedNow >= maxEjected(poolSize, cfg)) return 0
  if (s.lastEjectedAt > 0 && nowMs - s.lastEjectedAt - ejectionMs(s.ejections, cfg) > cfg.maxEjectionMs) s.ejections = 0
  s.ejections++
  s.totalEjections++
  const ms = ejectionMs(s.ejections, cfg)
  s.ejectedUntil = nowMs + ms
  s.lastEjectedAt = nowMs
  s.consecutiveFailures = 0
  return ms
}
