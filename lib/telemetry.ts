// Spans for gateway requests and flow steps. With OTEL_EXPORTER_OTLP_ENDPOINT set, the OpenTelemetry
// SDK records and exports them; without it, ids are still made (trace ids reach the envelope and
// logs) but nothing else is done: one branch per span when tracing is off.
import { context, trace, SpanStatusCode, TraceFlags, type Tracer } from '@opentelemetry/api'
import type { Config } from './config.js'
import { newSpanId, newTraceId } from './trace-context.js'

export interface SpanHandle {
  readonly traceId: string
  readonly spanId: string
  end(error?: { code: string; message: string }): void
}

export interface Tracing {
  readonly enabled: boolean
  /** A span in `traceId` under `parentSpanId` (the trace id is new when none is given). */
  startSpan(name: string, traceId: string | undefined, parentSpanId: string | undefined, attributes?: Record<string, string | number>): SpanHandle
  shutdown(): Promise<void>
}

const noop = () => {}

export const disabledTracing: Tracing = {
  enabled: false,
  startSpan(_name, traceId) {
    return { traceId: traceId ?? newTraceId(), spanId: newSpanId(), end: noop }
  },
  shutdown: async () => {},
}

/** Starts the OpenTelemetry SDK when an OTLP endpoint is configured (loaded only then: it is large). */
export async function createTracing(config: Pick<Config, 'otelEndpoint' | 'otelServiceName'>, component: string): Promise<Tracing> {
  if (!config.otelEndpoint) return disabledTracing
  const [{ NodeSDK }, { OTLPTraceExporter }, { resourceFromAttributes }, { ATTR_SERVICE_NAME }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ])
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: `${config.otelServiceName}-${component}` }),
    traceExporter: new OTLPTraceExporter({ url: `${config.otelEndpoint.replace(/\/$/, '')}/v1/traces`, timeoutMillis: 5000 }),
  })
  sdk.start()
  const tracer: Tracer = trace.getTracer('flowgate')
  return {
    enabled: true,
    startSpan(name, traceId, parentSpanId, attributes) {
      const parent =
        traceId && parentSpanId
          ? trace.setSpanContext(context.active(), { traceId, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true })
          : context.active()
      const span = tracer.startSpan(name, { attributes }, parent)
      const sc = span.spanContext()
      return {
        traceId: sc.traceId,
        spanId: sc.spanId,
        end(error) {
          if (error) {
            span.setStatus({ code: SpanStatusCode.ERROR, message: error.message })
            span.setAttribute('flowgate.error_code', error.code)
          }
          span.end()
        },
      }
    },
    shutdown: () => sdk.shutdown(),
  }
}
