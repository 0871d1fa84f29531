// What a flow's run() receives. ctx.step() is where tracing happens: each step is timed, logged
// once, given a span and published on traces.<traceId> so `nats sub 'traces.>'` shows it live.
import type { NatsConnection } from 'nats'
import type { Redis } from 'ioredis'
import type { Database } from '../db/client.js'
import type { Principal, TokenService } from '../lib/auth.js'
import { toFlowgateError } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import type { PublishBatcher } from '../lib/publish-batch.js'
import type { PasswordHasher } from '../lib/passwords.js'
import { subjects } from '../lib/subjects.js'
import type { StepEvent } from '../schemas/trace.js'
import type { SpanHandle, Tracing } from '../lib/telemetry.js'
import type { FlowMetrics } from './metrics.js'

/** What flows may use. Processes that host flows fill it in at start-up. */
export interface FlowDeps {
  nats: NatsConnection
  /** Named health probes (database, Redis, ...) that the healthcheck flow runs; each rejects when down. */
  probes: Record<string, () => Promise<unknown>>
  /** The Drizzle database (PostgreSQL or embedded PGlite); absent in processes that host no data flows. */
  db?: Database
  /** Redis through the cache proxy (ioredis, bounded command timeout); flows work uncached without it. */
  cache?: Redis
  /** Signs tokens (login flows); the worker verifies callers with the same service. */
  tokens?: TokenService
  /** Hashes and checks passwords and client secrets. */
  passwords?: PasswordHasher
}

export interface FlowContext {
  readonly flow: string
  readonly requestId: string
  readonly traceId: string
  /** The span of the current step (or of the flow, outside any step). */
  readonly spanId: string
  /** The verified caller, or undefined for an anonymous call to a public flow. */
  readonly user: Principal | undefined
  readonly log: Logger
  /** Aborted when the deadline passes or the caller goes away. */
  readonly signal: AbortSignal
  readonly deps: FlowDeps
  /** Runs one named step; steps nest through the ctx handed to `fn`. */
  step<T>(name: string, fn: (ctx: FlowContext) => Promise<T> | T): Promise<T>
}

/** What one flow run shares with every context of it (the flow's and each step's). */
export interface ContextInit {
  flow: string
  requestId: string
  traceId: string
  user: Principal | undefined
  /** The worker's logger; ctx.log is a child of it made on first use. */
  baseLog: Logger
  /** The run's abort signal, made on first use (most flows never look at it). */
  signal: () => AbortSignal
  deps: FlowDeps
  tracing: Tracing
  metrics: FlowMetrics
  /** The id of the worker running the flow (its micro service instance), carried by step events. */
  worker?: string
  /** Where step events go; undefined disables publishing. */
  publishStep: ((event: StepEvent) => void) | undefined
  /** Set to the name of the step that failed first, for the flow's own failure log line. */
  onStepFailed: (step: string) => void
}

// A class rather than an object literal per call: the getters live once on the prototype, and a
// step's context is three fields, not a copy of the run's. Flows run this per request and per step.
class Context implements FlowContext {
  private childLog: Logger | undefined

  constructor(
    private readonly init: ContextInit,
    private readonly span: SpanHandle,
    private readonly stepPath: string,
  ) {}

  get spanId() {
    return this.span.spanId
  }
  get flow() {
    return this.init.flow
  }
  get requestId() {
    return this.init.requestId
  }
  get traceId() {
    return this.init.traceId
  }
  get user() {
    return this.init.user
  }
  get deps() {
    return this.init.deps
  }
  get signal() {
    return this.init.signal()
  }
  get log() {
    const { init } = this
    this.childLog ??= init.baseLog.child({
      flow: init.flow,
      trace_id: init.traceId,
      span_id: this.spanId,
      request_id: init.requestId,
      ...(this.stepPath ? { step: this.stepPath } : {}),
    })
    return this.childLog
  }

  step<T>(name: string, fn: (ctx: FlowContext) => Promise<T> | T): Promise<T> {
    return runStep(this.init, this.span, this.stepPath, name, fn)
  }
}

/** The context of a flow run, under the flow's span. */
export function createContext(init: ContextInit, span: SpanHandle): FlowContext {
  return new Context(init, span, '')
}

async function runStep<T>(
  init: ContextInit,
  parent: SpanHandle,
  parentPath: string,
  name: string,
  fn: (ctx: FlowContext) => Promise<T> | T,
): Promise<T> {
  const stepName = parentPath ? `${parentPath}/${name}` : name
  const parentSpanId = parent.spanId
  const span = init.tracing.startSpan(`step ${stepName}`, init.traceId, parentSpanId, undefined, { kind: 'internal', parent })
  if (span.recording) span.setAttributes({ 'flowgate.flow': init.flow, 'flowgate.step': stepName })
  const child = new Context(init, span, stepName)
  const startedAt = Date.now()
  const t0 = performance.now()
  // One line per step, written with explicit fields rather than a child logger per step: this is the hot path.
  const line = {
    flow: init.flow,
    step: stepName,
    trace_id: init.traceId,
    span_id: span.spanId,
    parent_span_id: parentSpanId,
    request_id: init.requestId,
    outcome: 'ok' as 'ok' | 'error',
    durationMs: 0,
  }
  const publish = (extra: Pick<StepEvent, 'outcome' | 'errorCode' | 'error'>) =>
    init.publishStep?.({
      v: 1,
      traceId: init.traceId,
      spanId: span.spanId,
      parentSpanId,
      requestId: init.requestId,
      flow: init.flow,
      step: stepName,
      worker: init.worker,
      startedAt,
      durationMs: line.durationMs,
      ...extra,
    })
  try {
    // Run inside the step's span, so the queries and commands it makes are spans under it.
    const result = await span.run(() => fn(child))
    const elapsed = performance.now() - t0
    line.durationMs = round(elapsed)
    init.baseLog.info(line, 'step ok')
    span.end(undefined, OK_ATTRIBUTES)
    init.metrics.stepDone(init.flow, stepName, 'ok', elapsed / 1000)
    publish({ outcome: 'ok' })
    return result
  } catch (err) {
    const elapsed = performance.now() - t0
    line.durationMs = round(elapsed)
    line.outcome = 'error'
    const fe = toFlowgateError(err)
    const message = err instanceof Error ? err.message : String(err)
    // A 5xx message may carry internals (driver text, hosts): logged here, never published.
    const unexpected = fe.status >= 500
    init.baseLog.warn({ ...line, errorCode: fe.code, error: message, err: unexpected ? err : undefined }, 'step failed')
    span.end({ code: fe.code, message, status: fe.status }, ERROR_ATTRIBUTES)
    init.metrics.stepDone(init.flow, stepName, 'error', elapsed / 1000)
    init.onStepFailed(stepName)
    publish({ outcome: 'error', errorCode: fe.code, error: unexpected ? undefined : message.slice(0, MAX_ERROR_CHARS) })
    throw err
  }
}

const OK_ATTRIBUTES = { attributes: { 'flowgate.outcome': 'ok' } }
const ERROR_ATTRIBUTES = { attributes: { 'flowgate.outcome': 'error' } }

/** A published step error is bounded like the schema says (schemas/trace.ts). */
const MAX_ERROR_CHARS = 1024
const round = (ms: number) => Math.round(ms * 1000) / 1000

/** Publishes step events on `traces.<traceId>`; never throws into the flow. */
export function stepPublisher(batcher: PublishBatcher, onDrop: () => void): (event: StepEvent) => void {
  return (event) => batcher.publish(subjects.trace(event.traceId), Buffer.from(JSON.stringify(event)), undefined, onDrop)
}
