// Tracing with the OpenTelemetry SDK: what lib/telemetry.ts's createTracing loads, and only when an
// OTLP endpoint is configured, so a process that does not trace loads neither the SDK nor the API.
// The packages are imported statically: they are CommonJS, and in the linked build
// (scripts/bundle.mjs) a dynamic import() of a CommonJS package yields only its default export.
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span, type Tracer } from '@opentelemetry/api'
import { ExportResultCode } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
import * as base from '@opentelemetry/sdk-trace-base'
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'
import { newSpanId } from './trace-context.js'
import {
  recordableMessage,
  resourceAttributes,
  SampledOutSpan,
  scrubMessage,
  tracesUrl,
  type SpanAttributes,
  type SpanError,
  type SpanHandle,
  type SpanKindName,
  type Tracing,
  type TracingConfig,
  type TracingOptions,
  type TracingStats,
} from './telemetry.js'

const KINDS: Record<SpanKindName, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  internal: SpanKind.INTERNAL,
  consumer: SpanKind.CONSUMER,
  producer: SpanKind.PRODUCER,
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

/** The SDK's tracer behind the Tracing interface (lib/telemetry.ts's createTracing). */
export function startSdkTracing(config: TracingConfig, endpoint: string, component: string, options: TracingOptions): Tracing {
  const counts = new Counts()
  const maxQueue = config.otelBspMaxQueueSize

  const otlp = new OTLPTraceExporter({ url: tracesUrl(endpoint), timeoutMillis: config.otelExporterTimeoutMs })
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
    sampler: samplerOf(config),
    spanProcessors: [bounded],
    // A span's size is bounded too: a long URL path or step name is cut, not exported whole.
    spanLimits: { attributeValueLengthLimit: 1024, attributeCountLimit: 64, eventCountLimit: 16, linkCountLimit: 8 },
  })
  // Global, so that the pg, ioredis and undici instrumentations (lib/instrumentation.ts) record through it.
  // `contextManager: null` leaves the no-op one: context.with() then just calls its function.
  const activates = options.activeContext !== false
  provider.register(activates ? {} : { contextManager: null })
  const tracer: Tracer = provider.getTracer('flowgate')
  const parentBased = !ROOT_ONLY_SAMPLERS.has(config.otelTracesSampler)

  return {
    enabled: true,
    startSpan(name, traceId, parentSpanId, attributes, options) {
      if (options?.parent !== undefined && !options.parent.recording) return new SampledOutSpan(traceId ?? options.parent.traceId, newSpanId())
      // A remote parent that was not sampled decides for its children under a parent-based sampler
      // (the default): not recorded, so the SDK is not asked (a flow run at 1 % sampling, 99 times in 100).
      if (parentBased && traceId && parentSpanId && options?.parent === undefined && options?.sampled === false) return new SampledOutSpan(traceId, newSpanId())
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

/** The samplers that decide alone, whatever the parent decided; every other one follows the parent (samplerOf). */
const ROOT_ONLY_SAMPLERS = new Set(['always_on', 'always_off', 'traceidratio'])

function samplerOf(config: TracingConfig) {
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

