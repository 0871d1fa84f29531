// Prometheus metrics of the proxy. Labels are bounded: upstream names come from the services file,
// targets from it or from a discovery source capped per upstream, statuses as their class.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { STATE_VALUE } from './breaker.js'
import type { UpstreamTarget } from './target.js'

export interface UpstreamMetrics {
  /** One attempt's time to the answer's headers (or to its failure). */
  attempt(upstream: string, statusClass: string, seconds: number): void
  retry(upstream: string): void
  retrySkipped(upstream: string, reason: string): void
  ejection(upstream: string): void
  reload(outcome: 'applied' | 'rejected'): void
}

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx']

export function statusClass(status: number): string {
  return CLASSES[Math.floor(status / 100) - 1] ?? 'error'
}

export function createUpstreamMetrics(registry: Registry, targets: () => Iterable<UpstreamTarget>): UpstreamMetrics {
  const duration = new Histogram({
    name: 'flowgate_upstream_request_duration_seconds',
    help: 'Proxy attempts by upstream and status class (error: no answer), to the answer headers',
    labelNames: ['upstream', 'status_class'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const retries = new Counter({ name: 'flowgate_upstream_retries_total', help: 'Proxy attempts that were retries', labelNames: ['upstream'] as const, registers: [registry] })
  const skipped = new Counter({
    name: 'flowgate_upstream_retries_skipped_total',
    help: 'Failed attempts not retried, by reason (method, attempts, body, no_target, budget, deadline)',
    labelNames: ['upstream', 'reason'] as const,
    registers: [registry],
  })
  const ejections = new Counter({ name: 'flowgate_upstream_ejections_total', help: 'Targets ejected by passive outlier detection', labelNames: ['upstream'] as const, registers: [registry] })
  const reloads = new Counter({ name: 'flowgate_services_reloads_total', help: 'Services file reads, by outcome (rejected: the last good table was kept)', labelNames: ['outcome'] as const, registers: [registry] })
  new Gauge({
    name: 'flowgate_upstream_circuit_state',
    help: 'Breaker state per target: 0 closed, 1 open, 2 half-open',
    labelNames: ['upstream', 'target'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const t of targets()) this.set({ upstream: t.upstream, target: t.url }, STATE_VALUE[t.breaker.state()])
    },
  })
  new Gauge({
    name: 'flowgate_upstream_active_requests',
    help: 'Requests in flight per target',
    labelNames: ['upstream', 'target'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const t of targets()) this.set({ upstream: t.upstream, target: t.url }, t.active)
    },
  })
  return {
    attempt: (upstream, cls, seconds) => duration.observe({ upstream, status_class: cls }, seconds),
    retry: (upstream) => retries.inc({ upstream }),
    retrySkipped: (upstream, reason) => skipped.inc({ upstream, reason }),
    ejection: (upstream) => ejections.inc({ upstream }),
    reload: (outcome) => reloads.inc({ outcome }),
  }
}
