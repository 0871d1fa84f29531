// Every subject, stream, bucket, header and metadata name in one module of builders: no inline strings elsewhere.
import type { EventKind } from '../schemas/events.js'

/** The NATS micro service every flow worker registers as. */
export const FLOW_SERVICE_NAME = 'flowgate-flows'
/** Queue group shared by all workers: one delivery per request across every worker. */
export const FLOW_QUEUE_GROUP = 'flowgate-flows'

const FLOW_NAME = /^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*$/

export function isFlowName(name: string): boolean {
  return FLOW_NAME.test(name)
}

const FLOW_PREFIX = 'api.v1'

export const subjects = {
  /** `api.v1.<domain>.<action>` */
  flow: (name: string) => `${FLOW_PREFIX}.${name}`,
  /** What every flow subject starts with. */
  flowPrefix: FLOW_PREFIX,
  /** Workers announce themselves here at start so gateways refresh their route table at once. */
  discoveryAnnounce: 'flowgate.discovery.announce',
  /** Gateways ask running flows to abort a request whose caller went away. */
  cancel: 'flowgate.cancel',
  /** One flow step event per message, per trace. */
  trace: (traceId: string) => `traces.${traceId}`,
  traceAll: 'traces.>',
  /** Gateway events (JetStream). */
  gatewayEvent: (kind: EventKind) => `gateway.${kind}`,
  gatewayAll: 'gateway.>',
  alert: (kind: string) => `alerts.${kind}`,
  alertAll: 'alerts.>',
} as const

export const streams = {
  traces: 'FLOWGATE_TRACES',
  gateway: 'FLOWGATE_GATEWAY',
} as const

export const buckets = {
  blocklist: 'flowgate_blocklist',
  /** HTTP service instances registered for proxy routes (`<service>.<instance>` keys). */
  services: 'flowgate_services',
} as const

/** Durable JetStream consumers. */
export const consumers = {
  subscriber: 'flowgate-subscriber',
} as const

/** Header names on the wire (DESIGN.md, "On the wire"). */
export const headers = {
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  requestId: 'Flowgate-Request-Id',
  deadline: 'Flowgate-Deadline',
  /** Made by the gateway for one call (random); what a cancellation names. */
  callId: 'Flowgate-Call-Id',
  authorization: 'Authorization',
  serviceError: 'Nats-Service-Error',
  serviceErrorCode: 'Nats-Service-Error-Code',
  /** JetStream de-duplicates publishes carrying the same id within the stream's window. */
  msgId: 'Nats-Msg-Id',
} as const

/**
 * Keys of a flow endpoint's metadata in $SRV.INFO (values are strings: JSON where structured).
 * Workers write them; gateways route by them.
 */
export const metadata = {
  flow: 'flowgate.flow',
  method: 'flowgate.http.method',
  path: 'flowgate.http.path',
  status: 'flowgate.http.status',
  /** `true` when the flow also takes application/x-www-form-urlencoded bodies. */
  form: 'flowgate.http.form',
  auth: 'flowgate.auth',
  timeoutMs: 'flowgate.timeout_ms',
  input: 'flowgate.schema.input',
  output: 'flowgate.schema.output',
  summary: 'flowgate.summary',
} as const
