// The gateway's Prometheus metrics. Every label is bounded: a route template (never the raw URL), a
// catalog error code, a flow name under a cap (flow names come from discovery, over the bus).
import { Counter, Histogram, type Registry } from 'prom-client'
import { boundedLabel } from '../lib/metrics.js'

/** How one flow call over NATS ended, from the gateway's side. */
export type FlowCallOutcome = 'replied' | 'no_responders' | 'timeout' | 'unavailable' | 'overloaded' | 'too_large'

export interface HttpMetrics {
  /** One finished request; `errorCode` is the envelope's code when the gateway answered an error. */
  observe(method: string, route: string, status: number, seconds: number, errorCode: string | undefined): void
  flowCall(subject: string, outcome: FlowCallOutcome): void
}

const MAX_FLOW_LABELS = 200
const FLOW_PREFIX = 'api.v1.'

/** Request duration in seconds by method, route template and status; errors by code; flow calls by outcome. */
export function createHttpMetrics(registry: Registry): HttpMetrics {
  const duration = new Histogram({
    name: 'flowgate_http_request_duration_seconds',
    help: 'HTTP requests served by the gateway, by route template',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const errors = new Counter({
    name: 'flowgate_http_errors_total',
    help: 'error answers of the gateway by route template and envelope error code',
    labelNames: ['route', 'code'] as const,
    registers: [registry],
  })
  const rateLimited = new Counter({ name: 'flowgate_rate_limit_hits_total', help: 'requests refused by the rate limiter (429)', registers: [registry] })
  const blocked = new Counter({ name: 'flowgate_blocked_requests_total', help: 'requests refused because their address is on the blocklist', registers: [registry] })
  const calls = new Counter({
    name: 'flowgate_flow_calls_total',
    help: 'flow calls over NATS by how they ended (replied: the flow answered, whatever its envelope said)',
    labelNames: ['flow', 'outcome'] as const,
    registers: [registry],
  })
  // Known at once, so a rate of zero is data rather than an absent series.
  rateLimited.inc(0)
  blocked.inc(0)
  const flowLabel = boundedLabel(MAX_FLOW_LABELS)
  const callChildren = new Map<string, ReturnType<typeof calls.labels>>()
  return {
    observe(method, route, status, seconds, errorCode) {
      duration.observe({ method, route, status: String(status) }, seconds)
      if (errorCode === undefined) return
      errors.inc({ route, code: errorCode })
      if (errorCode === 'RATE_LIMITED') rateLimited.inc()
      else if (errorCode === 'IP_BLOCKED') blocked.inc()
    },
    flowCall(subject, outcome) {
      // Once per subject and outcome the label child is made; a call then pays a map lookup, not a label hash.
      const key = subject + '\0' + outcome
      let child = callChildren.get(key)
      if (child === undefined) {
        const flow = subject.startsWith(FLOW_PREFIX) ? subject.slice(FLOW_PREFIX.length) : subject
        child = calls.labels(flowLabel(flow), outcome)
        if (callChildren.size < MAX_FLOW_LABELS * 8) callChildren.set(key, child)
      }
      child.inc()
    },
  }
}
