// The flow worker's Prometheus metrics. Each label child is looked up once per (flow, step, outcome)
// and kept, so a run pays a map lookup and an observe, not a label hash; gauges are read at scrape time.
import { Counter, Histogram, type Registry } from 'prom-client'
import { boundedLabel, scrapedCounter, scrapedGauge } from '../lib/metrics.js'

export interface FlowMetrics {
  flowDone(flow: string, outcome: 'ok' | 'error', seconds: number, errorCode?: string): void
  stepDone(flow: string, step: string, outcome: 'ok' | 'error', seconds: number): void
}

export interface WorkerGauges {
  running(): number
  queued(): number
  refused(): number
  limit(): number
  queueLimit(): number
  stepEventsDropped(): number
}

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Distinct step names kept per worker (step names are code, but a flow could build them from input). */
const MAX_STEP_LABELS = 500
const MAX_FLOW_LABELS = 200

export const noFlowMetrics: FlowMetrics = { flowDone() {}, stepDone() {} }

export function createFlowMetrics(registry: Registry, gauges: WorkerGauges): FlowMetrics {
  const flowDuration = new Histogram({
    name: 'flowgate_flow_duration_seconds',
    help: 'flow runs in the worker, from delivery to reply',
    labelNames: ['flow', 'outcome'] as const,
    buckets: BUCKETS,
    registers: [registry],
  })
  const stepDuration = new Histogram({
    name: 'flowgate_flow_step_duration_seconds',
    help: 'flow steps (ctx.step), nested steps named parent/child',
    labelNames: ['flow', 'step', 'outcome'] as const,
    buckets: BUCKETS,
    registers: [registry],
  })
  const flowErrors = new Counter({
    name: 'flowgate_flow_errors_total',
    help: 'failed flow runs by error code (the catalog code the caller got)',
    labelNames: ['flow', 'code'] as const,
    registers: [registry],
  })
  const gauge = (name: string, help: string, read: () => number) => scrapedGauge(registry, name, help, read)
  gauge('flowgate_flow_runs_in_flight', 'flow runs holding a concurrency slot', gauges.running)
  gauge('flowgate_flow_runs_queued', 'flow runs waiting for a slot (the queue depth)', gauges.queued)
  gauge('flowgate_flow_concurrency_limit', 'flow runs at once this worker allows (FLOW_CONCURRENCY)', gauges.limit)
  gauge('flowgate_flow_queue_limit', 'flow runs this worker holds waiting before it refuses (FLOW_QUEUE_LIMIT)', gauges.queueLimit)
  const counter = (name: string, help: string, read: () => number) => scrapedCounter(registry, name, help, read)
  counter('flowgate_flow_runs_refused_total', 'flow runs refused with 503 because the queue was full', gauges.refused)
  counter('flowgate_flow_step_events_dropped_total', 'step events not published on traces.<traceId> (bus gone or slow)', gauges.stepEventsDropped)

  const flowLabel = boundedLabel(MAX_FLOW_LABELS)
  const stepLabel = boundedLabel(MAX_STEP_LABELS)
  const flowChildren = new Map<string, ReturnType<typeof flowDuration.labels>>()
  const stepChildren = new Map<string, ReturnType<typeof stepDuration.labels>>()
  return {
    flowDone(flow, outcome, seconds, errorCode) {
      const key = flow + '\0' + outcome
      let child = flowChildren.get(key)
      if (child === undefined) {
        child = flowDuration.labels(flowLabel(flow), outcome)
        if (flowChildren.size < MAX_FLOW_LABELS * 2) flowChildren.set(key, child)
      }
      child.observe(seconds)
      if (errorCode !== undefined) flowErrors.inc({ flow: flowLabel(flow), code: errorCode })
    },
    stepDone(flow, step, outcome, seconds) {
      const key = flow + '\0' + step + '\0' + outcome
      let child = stepChildren.get(key)
      if (child === undefined) {
        child = stepDuration.labels(flowLabel(flow), stepLabel(step), outcome)
        if (stepChildren.size < MAX_STEP_LABELS * 2) stepChildren.set(key, child)
      }
      child.observe(seconds)
    },
  }
}
