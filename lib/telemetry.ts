// Spans for gateway requests, flow calls, flow runs and steps. With OTEL_EXPORTER_OTLP_ENDPOINT set,
// the OpenTelemetry SDK records them (kinds and attributes after the semantic conventions), samples
// them (OTEL_TRACES_SAMPLER, parent-based by default) and exports them in bounded batches off the
// request path; without it, ids are still made (trace ids reach the envelope and logs) but nothing
// else is done: one branch per span when tracing is off.
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span, type Tracer } from '@opentelemetry/api'
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { Registry } from 'prom-client'
import { scrapedCounter, scrapedGauge } from './metrics.js'
import type { Config } from './config.js'
import { newSpanId, newTraceId } from './trace-context.js'

export type SpanKindName = 'server' | 'client' | 'internal' | 'consumer' | 'producer'
export type SpanAttributes = Record<string, string | number | boolean | undefined>

export interface SpanOptions {
  kind?: SpanKindName
  /** The span this one is a child of, in this process: its sampling decision is followed. */
  parent?: SpanHandle
  /** For a remote parent (given by ids): whether the caller sampled it (the traceparent flags); default true. */
  sampled?: boolean
}

/** How a span failed. A message of an unexpected failure (status >= 500, INTERNAL_ERROR) is never recorded. */
export interface SpanError {
  code: string
  message: string
  status?: number
}

export interface SpanHandle {
  readonly traceId: string
  readonly spanId: string
  /** The traceparent flags to pass on: '01' recorded and exported, '00' sampled out. */
  readonly flags: string
  /** Whether the span is recorded (tracing on and sampled): attributes are worth building only then. */
  readonly recording: boolean
  setAttributes(attributes: SpanAttributes): void
  /** Runs fn with this span active, so spans of instrumented libraries (pg, ioredis, undici) become its children. */
  run<T>(fn: () => T): T
  /** Ends the span; `final` names it and adds what is known only at the end (route, status). */
  end(error?: SpanError, final?: { name?: string; attributes?: SpanAttributes }): void
}

export interface TracingStats {
  /** Spans handed to the collector. */
  exported: number
  /** Spans lost: the export queue was full, or the collector failed or did not answer. */
  dropped: number
  /** Spans waiting to be exported. */
  queued: number
}

export interface Tracing {
  readonly enabled: boolean
  /** A span in `traceId` under `parentSpanId` (the trace id is new when none is given). */
  startSpan(name: string, traceId: string | undefined, parentSpanId: string | undefined, attributes?: SpanAttributes, options?: SpanOptions): SpanHandle
  stats(): TracingStats
  /** Exports what is queued now (bounded by the export timeout). */
  flush(): Promise<void>
  shutdown(): Promise<void>
}

export type TracingConfig = Pick<
  Config,
  | 'otelEndpoint'
  | 'otelServiceName'
  | 'otelTracesSampler'
  | 'otelTracesSamplerArg'
  | 'otelResourceAttributes'
  | 'otelBspMaxQueueSize'
  | 'otelBspScheduleDelayMs'
  | 'otelExporterTimeoutMs'
>

// One class for every span while tracing is off: its methods live on the prototype, so a span is one small object.
class UntracedSpan implements SpanHandle {
  constructor(
    readonly traceId: string,
    readonly spanId: string,
  ) {}
  get flags() {
    return '01'
  }
  get recording() {
    return false
  }
  setAttributes(): void {}
  run<T>(fn: () => T): T {
    return fn()
  }
  end(): void {}
}

/** A child of a span that is not recorded: not recorded either (every sampler here agrees), so the SDK is not asked. */
class SampledOutSpan extends UntracedSpan {
  override get flags() {
    return '00'
  }
}

const noStats: TracingStats = Object.freeze({ exported: 0, dropped: 0, queued: 0 })

export const disabledTracing: Tracing = {
  enabled: false,
  startSpan(_name, traceId) {
    return new UntracedSpan(traceId ?? newTraceId(), newSpanId())
  },
  stats: () => noStats,
  flush: async () => {},
  shutdown: async () => {},
}

const KINDS: Record<SpanKindName, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  internal: SpanKind.INTERNAL,
  consumer: SpanKind.CONSUMER,
  producer: SpanKind.PRODUCER,
}

const MAX_ERROR_MESSAGE = 256

/** The message a span may carry for an error: an unexpected failure's text may hold internals (driver text, hosts). */
export function recordableMessage(error: SpanError): string {
  if (error.code === 'INTERNAL_ERROR' || (error.status !== undefined && error.status >= 500 && error.status !== 503 && error.status !== 504)) {
    return error.code
  }
  return error.message.length > MAX_ERROR_MESSAGE ? error.message.slice(0, MAX_ERROR_MESSAGE) : error.message
}

class RecordedSpan implements SpanHandle {
  readonly traceId: string
  readonly spanId: string
  readonly flags: string
  readonly recording: boolean

  constructor(
    private readonly span: Span,
    private readonly activates: boolean,
  ) {
    const sc = span.spanContext()
    this.traceId = sc.traceId
    this.spanId = sc.spanId
    this.recording = (sc.traceFlags & TraceFlags.SAMPLED) !== 0
    this.flags = this.recording ? '01' : '00'
  }

  setAttributes(attributes: SpanAttributes): void {
    this.span.setAttributes(attributes)
  }

  run<T>(fn: () => T): T {
    // A span sampled out has no children worth making: the instrumentations, finding no active span,
    // make none (they require a parent), and the call skips the context switch.
    if (!this.activates || !this.recording) return fn()
    return context.with(trace.setSpan(ROOT_CONTEXT, this.span), fn)
  }

  end(error?: SpanError, final?: { name?: string; attributes?: SpanAttributes }): void {
    const { span } = this
    if (!this.recording) return span.end()
    if (final?.name) span.updateName(final.name)
    if (final?.attributes) span.setAttributes(final.attributes)
    if (error) {
      const message = recordableMessage(error)
      span.setStatus({ code: SpanStatusCode.ERROR, message })
      span.setAttribute('error.type', error.code)
      // The exception event without a stack: what failed and how, never where in the code.
      span.addEvent('exception', { 'exception.type': error.code, 'exception.message': message })
    }
    span.end()
  }
}

/** Counts what the batch processor is given and what the exporter does with it, so losses are visible. */
class Counts implements TracingStats {
  exported = 0
  dropped = 0
  queued = 0
}

export interface TracingOptions {
  /**
   * Whether spans can be made active (`SpanHandle.run`), so that the spans of instrumented libraries
   * become their children. It needs a context manager, which on Node 20 is AsyncLocalStorage on
   * async_hooks: once on, every promise in the process pays for it (measured: 20 awaits went from
   * 1.5-2.2 µs to 4.8-5.6 µs). A process that calls no instrumented library inside a span (the
   * gateway: its spans' parents are passed by id) runs without one.
   */
  activeContext?: boolean
}

/** Starts the OpenTelemetry SDK when an OTLP endpoint is configured (loaded only then: it is large); `component` names the service unless OTEL_SERVICE_NAME does. */
export async function createTracing(config: TracingConfig, component: string, options: TracingOptions = {}): Promise<Tracing> {
  if (!config.otelEndpoint) return disabledTracing
  const { base, NodeTracerProvider, OTLPTraceExporter, resourceFromAttributes, defaultResource, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION, ExportResultCode } =
    await import('./otel-sdk.js')
  const counts = new Counts()
  const maxQueue = config.otelBspMaxQueueSize

  const otlp = new OTLPTraceExporter({ url: tracesUrl(config.otelEndpoint), timeoutMillis: config.otelExporterTimeoutMs })
  const exporter: SpanExporter = {
    export(spans, done) {
      counts.queued -= spans.length
      otlp.export(spans, (result) => {
        if (result.code === ExportResultCode.SUCCESS) counts.exported += spans.length
        else counts.dropped += spans.length
        done(result)
      })
    },
    shutdown: () => otlp.shutdown(),
    forceFlush: () => otlp.forceFlush(),
  }
  const batch = new base.BatchSpanProcessor(exporter, {
    maxQueueSize: maxQueue,
    maxExportBatchSize: Math.min(512, maxQueue),
    scheduledDelayMillis: config.otelBspScheduleDelayMs,
    exportTimeoutMillis: config.otelExporterTimeoutMs,
  })
  // In front of the batch processor: it drops silently when its queue is full; here the drop is counted.
  const bounded: SpanProcessor = {
    onStart: (span, parent) => batch.onStart(span, parent),
    onEnd(span: ReadableSpan) {
      if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return
      scrubErrors(span)
      if (counts.queued >= maxQueue) {
        counts.dropped++
        return
      }
      counts.queued++
      batch.onEnd(span)
    },
    forceFlush: () => batch.forceFlush(),
    shutdown: () => batch.shutdown(),
  }

  const resource = defaultResource().merge(
    resourceFromAttributes({
      ...resourceAttributes(config.otelResourceAttributes),
      [ATTR_SERVICE_NAME]: config.otelServiceName ?? (component ? `flowgate-${component}` : 'flowgate'),
      [ATTR_SERVICE_VERSION]: '0.1.0',
    }),
  )
  const provider = new NodeTracerProvider({
    resource,
    sampler: samplerOf(config, base),
    spanProcessors: [bounded],
    // A span's size is bounded too: a long URL path or step name is cut, not exported whole.
    spanLimits: { attributeValueLengthLimit: 1024, attributeCountLimit: 64, eventCountLimit: 16, linkCountLimit: 8 },
  })
  // Global, so that the pg, ioredis and undici instrumentations (lib/instrumentation.ts) record through it.
  // `contextManager: null` leaves the no-op one: context.with() then just calls its function.
  const activates = options.activeContext !== false
  provider.register(activates ? {} : { contextManager: null })
  const tracer: Tracer = provider.getTracer('flowgate')

  return {
    enabled: true,
    startSpan(name, traceId, parentSpanId, attributes, options) {
      if (options?.parent !== undefined && !options.parent.recording) return new SampledOutSpan(traceId ?? options.parent.traceId, newSpanId())
      let parent: Context = ROOT_CONTEXT
      if (traceId && parentSpanId) {
        const sampled = options?.parent ? options.parent.flags === '01' : options?.sampled !== false
        parent = trace.setSpanContext(ROOT_CONTEXT, {
          traceId,
          spanId: parentSpanId,
          traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
          isRemote: options?.parent === undefined,
        })
      }
      return new RecordedSpan(tracer.startSpan(name, { kind: KINDS[options?.kind ?? 'internal'], attributes }, parent), activates)
    },
    stats: () => ({ exported: counts.exported, dropped: counts.dropped, queued: counts.queued }),
    flush: () => provider.forceFlush(),
    async shutdown() {
      await provider.shutdown()
      trace.disable()
      if (activates) context.disable()
    },
  }
}

const QUOTED = /'[^']*'|"[^"]*"/g

/**
 * The instrumentations record a failed call's exception with its stack and the driver's message,
 * which quotes what was sent (Redis: the command's arguments, keys that may hold an email; pg: a
 * value that broke a constraint). Before export the stack goes and quoted text becomes `'…'`:
 * the error's type and shape stay, what it was about does not leave the process.
 */
function scrubErrors(span: ReadableSpan): void {
  for (const event of span.events) {
    if (event.name !== 'exception' || !event.attributes) continue
    const attributes = event.attributes as Record<string, unknown>
    delete attributes['exception.stacktrace']
    const message = attributes['exception.message']
    if (typeof message === 'string') attributes['exception.message'] = scrubMessage(message)
  }
  const status = span.status as { message?: string }
  if (status.message) status.message = scrubMessage(status.message)
}

export function scrubMessage(message: string): string {
  const scrubbed = message.replace(QUOTED, "'…'")
  return scrubbed.length > MAX_ERROR_MESSAGE ? scrubbed.slice(0, MAX_ERROR_MESSAGE) : scrubbed
}

/** The OTLP/HTTP traces URL: the standard says the base endpoint gets `/v1/traces` appended. */
export function tracesUrl(endpoint: string): string {
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`
}

/** `OTEL_RESOURCE_ATTRIBUTES` entries (`key=value`, values percent-encoded) as attributes; a bad entry is skipped. */
export function resourceAttributes(entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>
  for (const entry of entries) {
    const eq = entry.indexOf('=')
    if (eq <= 0) continue
    const key = entry.slice(0, eq).trim()
    try {
      out[key] = decodeURIComponent(entry.slice(eq + 1).trim())
    } catch {
      out[key] = entry.slice(eq + 1).trim() // not valid percent-encoding: kept as written
    }
  }
  return { ...out }
}

type SdkBase = typeof import('@opentelemetry/sdk-trace-base')

function samplerOf(config: TracingConfig, base: SdkBase) {
  const ratio = config.otelTracesSamplerArg
  switch (config.otelTracesSampler) {
    case 'always_on':
      return new base.AlwaysOnSampler()
    case 'always_off':
      return new base.AlwaysOffSampler()
    case 'traceidratio':
      return new base.TraceIdRatioBasedSampler(ratio)
    case 'parentbased_always_off':
      return new base.ParentBasedSampler({ root: new base.AlwaysOffSampler() })
    case 'parentbased_traceidratio':
      return new base.ParentBasedSampler({ root: new base.TraceIdRatioBasedSampler(ratio) })
    default:
      return new base.ParentBasedSampler({ root: new base.AlwaysOnSampler() })
  }
}

/** Span export counters on a process's /metrics (read at scrape time: nothing per span). */
export function registerTracingMetrics(registry: Registry, tracing: Tracing): void {
  scrapedCounter(registry, 'flowgate_trace_spans_exported_total', 'spans handed to the OTLP collector', () => tracing.stats().exported)
  scrapedCounter(registry, 'flowgate_trace_spans_dropped_total', 'spans lost: export queue full, or the collector failed or did not answer', () => tracing.stats().dropped)
  scrapedGauge(registry, 'flowgate_trace_spans_queued', 'spans waiting to be exported', () => tracing.stats().queued)
}
