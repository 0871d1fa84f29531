// The OpenTelemetry SDK parts lib/telemetry.ts uses, in one module that it imports only when tracing
// is on (the SDK is large). Static imports on purpose: these packages are CommonJS, and in the
// linked build (scripts/bundle.mjs) a dynamic import() of a CommonJS package yields only its default
// export; a static one keeps the names.
export * as base from '@opentelemetry/sdk-trace-base'
export { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
export { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
export { defaultResource, resourceFromAttributes } from '@opentelemetry/resources'
export { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'
export { ExportResultCode } from '@opentelemetry/core'
