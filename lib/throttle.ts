// A warning that repeats under load (a store that stopped answering, events dropped) is logged once
// per interval with the count of those it stood for, so an outage is visible without flooding the log.
import type { Logger } from './logger.js'

export interface ThrottledWarning {
  (fields: Record<string, unknown>, message: string): void
}

export function throttledWarning(log: Logger, everyMs: number, now: () => number = Date.now): ThrottledWarning {
  let lastMs = -Infinity
  let suppressed = 0
  return (fields, message) => {
    const t = now()
    if (t - lastMs < everyMs) {
      suppressed++
      return
    }
    log.warn({ ...fields, suppressedSinceLast: suppressed }, message)
    lastMs = t
    suppressed = 0
  }
}
