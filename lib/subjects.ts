// Every subject, stream, bucket and header name in one module of builders: no inline strings elsewhere.

/** The NATS micro service every flow worker registers as. */
export const FLOW_SERVICE_NAME = 'flowgate-flows'
/** Queue group shared by all workers: one delivery per request across every worker. */
export const FLOW_QUEUE_GROUP = 'flowgate-flows'

const FLOW_NAME = /^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*$/

export function isFlowName(name: string): boolean {
  return FLOW_NAME.test(name)
}

export const subjects = {
  /** `api.v1.<domain>.<action>` */
  flow: (name: string) => `api.v1.${name}`,
  /** Workers announce themselves here at start so gateways refresh their route table at once. */
  discoveryAnnounce: 'flowgate.discovery.announce',
  /** Gateways ask running flows to abort a request whose caller went away. */
  cancel: 'flowgate.cancel',
  /** One flow step event per message, per trace. */
  trace: (traceId: string) => `traces.${traceId}`,
  traceAll: 'traces.>',
  /** Gateway events (JetStream). */
  gatewayEvent: (kind: 'rate_limit.hit' | 'circuit.opened' | 'circuit.closed' | 'request.completed' | 'ip.blocked') =>
    `gateway.${kind}`,
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
  authorization: 'Authorization',
  serviceError: 'Nats-Service-Error',
  serviceErrorCode: 'Nats-Service-Error-Code',
} as const
