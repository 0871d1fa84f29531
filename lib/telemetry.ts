// Spans for gateway requests, flow calls, flow runs and steps. With OTEL_EXPORTER_OTLP_ENDPOINT set,
// the OpenTelemetry SDK records them (kinds and attributes after the semantic conventions), samples
// them (OTEL_TRACES_SAMPLER, parent-based by default) and exports them in bounded batches off the
// request path; without it, ids are still made (trace ids reach the envelope and logs) but nothing
// else is done: one branch per span when tracing is off.
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
export class SampledOutSpan extends UntracedSpan {
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

const MAX_ERROR_MESSAGE = 256

/** The message a span may carry for an error: an unexpected failure's text may hold internals (driver text, hosts). */
export function recordableMessage(error: SpanError): string {
  if (error.code === 'INTERNAL_ERROR' || (error.status !== undefined && error.status >= 500 && error.status !== 503 && error.status !== 504)) {
    return error.code
  }
  return error.message.length > MAX_ERROR_MESSAGE ? error.message.slice(0, MAX_ERROR_MESSAGE) : error.message
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
  const { startSdkTracing } = await import('./otel-sdk.js')
  return startSdkTracing(config, config.otelEndpoint, component, options)
}

const QUOTED = /'[^']*'|"[^"]*"/g

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

/** Span export counters on a process's /metrics (read at scrape time: nothing per span). */
export function registerTracingMetrics(registry: Registry, tracing: Tracing): void {
  scrapedCounter(registry, 'flowgate_trace_spans_exported_total', 'spans handed to the OTLP collector', () => tracing.stats().exported)
  scrapedCounter(registry, 'flowgate_trace_spans_dropped_total', 'spans lost: export queue full, or the collector failed or did not answer', () => tracing.stats().dropped)
  scrapedGauge(registry, 'flowgate_trace_spans_queued', 'spans waiting to be exported', () => tracing.stats().queued)
}
