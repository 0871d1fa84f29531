// The optional active health check of an upstream: every intervalMs, a GET of its path on each
// target (through the target's own pool), bounded by timeoutMs. unhealthyThreshold failures in a row
// take a target out of the balancer's choice, healthyThreshold successes bring it back.
import type { Logger } from '../../lib/logger.js'
import type { UpstreamTarget } from './target.js'
import type { Upstream } from './upstream.js'

const streaks = new WeakMap<UpstreamTarget, { ok: number; bad: number }>()

/** Starts the checks of one upstream (nothing when it has none); returns how to stop them. */
export function startHealthChecks(upstream: Upstream, log: Logger): () => void {
  const hc = upstream.spec.healthCheck
  if (hc === undefined) return () => {}
  let running = false
  const tick = async () => {
    if (running) return
    running = true
    try {
      await Promise.all(upstream.targets.map((t) => checkOne(t)))
    } finally {
      running = false
    }
  }
  const checkOne = async (t: UpstreamTarget) => {
    let ok = false
    try {
      const res = await t.pool.request({
        path: t.basePath + hc.path,
        method: 'GET',
        headersTimeout: hc.timeoutMs,
        bodyTimeout: hc.timeoutMs,
        signal: AbortSignal.timeout(hc.timeoutMs),
        headers: { 'user-agent': 'flowgate-health-check' },
      })
      await res.body.dump({ limit: 64 * 1024 })
      ok = res.statusCode >= 200 && res.statusCode < 400
    } catch {
      ok = false // refused, reset, timed out: all the same to a health check
    }
    const s = streaks.get(t) ?? { ok: 0, bad: 0 }
    streaks.set(t, s)
    if (ok) {
      s.ok++
      s.bad = 0
      if (!t.healthy && s.ok >= hc.healthyThreshold) {
        t.healthy = true
        log.info({ upstream: t.upstream, target: t.url }, 'health check passing again: target back in')
      }
    } else {
      s.bad++
      s.ok = 0
      if (t.healthy && s.bad >= hc.unhealthyThreshold) {
        t.healthy = false
        log.warn({ upstream: t.upstream, target: t.url }, 'health check failing: target taken out')
      }
    }
  }
  const timer = setInterval(() => void tick(), hc.intervalMs)
  timer.unref()
  void tick()
  return () => clearInterval(timer)
}
