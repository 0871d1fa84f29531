// The flow route: one HTTP request becomes one NATS request-reply on the flow's subject. Auth and
// edge validation happen here, before anything crosses the bus; the flow's envelope goes back as it came.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { NatsConnection } from 'nats'
import { authorize, type TokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import { JSON_TYPE, parseEnvelope, reviveError } from '../lib/envelope.js'
import { codeForStatus, errors, FlowgateError, isErrorCode, isPublicMessage } from '../lib/errors.js'
import { bodyText } from '../lib/nats.js'
import { headers as wire, subjects } from '../lib/subjects.js'
import type { SpanHandle, Tracing } from '../lib/telemetry.js'
import { formatTraceparent, newCallId } from '../lib/trace-context.js'
import { ajvFieldErrors } from '../lib/validation.js'
import { RequestHeaders } from '../lib/wire-headers.js'
import { callerOf } from './caller.js'
import type { HttpMetrics } from './metrics.js'
import { isFormBody } from './form-body.js'
import type { Requester } from './requester.js'
import type { FlowTarget, Params } from './resolver.js'
import { coerceInPlace, type FlowRoute } from './routes.js'

export interface FlowRouteDeps {
  nats: NatsConnection
  requester: Requester
  tokens: TokenService
  /** Whether another service also answers on the subject (server/discovery.ts). */
  contested: (subject: string) => boolean
  tracing: Tracing
  metrics: Pick<HttpMetrics, 'flowCall'>
}

export type FlowHandler = (request: FastifyRequest, reply: FastifyReply, target: FlowTarget) => Promise<FastifyReply>

export function createFlowHandler(config: Pick<Config, 'requestTimeoutMs'>, deps: FlowRouteDeps): FlowHandler {
  const { nats: nc, requester, tokens, tracing, metrics } = deps
  return async function callFlow(request, reply, target) {
    const { route, params } = target
    request.routeLabel = target.template
    if (deps.contested(route.subject)) throw errors.serviceUnavailable('Flow unavailable: another service answers on its subject')
    if (route.auth !== 'public') authorize(route.auth, callerOf(request, tokens))
    const input = mergeInput(route, request.body, request.query as Record<string, unknown>, params)
    if (!route.validate(input)) throw errors.validation(ajvFieldErrors(route.validate.errors))

    const payload = Buffer.from(JSON.stringify(input))
    // Checked here: the server would drop an oversized publish and the caller would wait for nothing.
    if (payload.length > requester.maxPayload()) {
      metrics.flowCall(route.subject, 'too_large')
      throw errors.payloadTooLarge(`Request is ${payload.length} bytes; the message bus accepts at most ${requester.maxPayload()}`)
    }
    const timeoutMs = route.timeoutMs ?? config.requestTimeoutMs
    const callId = newCallId()
    // The NATS request is its own CLIENT span when spans are recorded; off, the worker's parent is the request's span.
    const span = tracing.enabled ? startClientSpan(tracing, request, route.subject, payload.length) : request.span
    const h = new RequestHeaders()
      .put(wire.traceparent, formatTraceparent(request.traceId, span?.spanId ?? '0000000000000001', span?.flags))
      .put(wire.requestId, request.id)
      .put(wire.deadline, String(Date.now() + timeoutMs))
      .put(wire.callId, callId)
    if (request.tracestate) h.put(wire.tracestate, request.tracestate)
    const authorization = request.headers.authorization
    if (authorization) h.put(wire.authorization, authorization)

    const raw = reply.raw
    const onClose = () => {
      // The connection closed before the answer was written: the caller went away, so ask the worker to abort the run.
      if (!raw.writableEnded) nc.publish(subjects.cancel, callId)
    }
    raw.once('close', onClose)
    try {
      let envelope, text
      try {
        const msg = await requester.request(route.subject, payload, h, timeoutMs)
        // Decoded once: parsed to check the envelope, then sent as it came (a string body goes out with the headers in one write).
        text = bodyText(msg.data)
        envelope = parseEnvelope(text)
      } catch (err) {
        if (tracing.enabled) endClientSpan(span, err as { code: string; message: string; status?: number })
        throw err
      }
      if (tracing.enabled) endClientSpan(span, envelope.success ? undefined : envelope)
      // The worker answers in the trace it was given; anything else did not come from the call we made.
      if (envelope.traceId !== request.traceId) throw errors.badGateway('Flow replied for another trace')
      // The bus is untrusted: a code outside the catalog becomes the status's own, so the label set stays bounded.
      if (!envelope.success) request.errorCode = isErrorCode(envelope.errorCode) ? envelope.errorCode : codeForStatus(envelope.status)
      // A failing service may put internals in a 5xx message (a database URL, a host): only the
      // catalog's own codes and messages reach the client; the real one is logged.
      if (!envelope.success && envelope.status >= 500 && !(isErrorCode(envelope.errorCode) && isPublicMessage(envelope.errorCode, envelope.message))) {
        const masked = reviveError(envelope)
        request.log.warn({ flow: route.flow, errorCode: envelope.errorCode, message: envelope.message.slice(0, 300) }, 'flow 5xx message masked')
        throw new FlowgateError(masked.code, undefined, { stack: false })
      }
      return reply.code(envelope.status).type(JSON_TYPE).send(text)
    } finally {
      raw.removeListener('close', onClose)
    }
  }
}

function startClientSpan(tracing: Tracing, request: FastifyRequest, subject: string, bytes: number): SpanHandle {
  const span = tracing.startSpan(`send ${subject}`, request.traceId, request.span?.spanId, undefined, { kind: 'client', parent: request.span })
  if (span.recording) {
    span.setAttributes({
      'messaging.system': 'nats',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'request',
      'messaging.destination.name': subject,
      'messaging.message.body.size': bytes,
    })
  }
  return span
}

/** A flow's failure is the CLIENT span's error only when it is the flow's fault (5xx), as for an HTTP client. */
function endClientSpan(span: SpanHandle | undefined, failure: { errorCode?: string; code?: string; message: string; status?: number } | undefined) {
  if (failure === undefined || (failure.status !== undefined && failure.status < 500)) return span?.end()
  span?.end({ code: failure.errorCode ?? failure.code ?? 'INTERNAL_ERROR', message: failure.message, status: failure.status })
}

/** Path params over query over body: the path is the most specific thing the caller said. */
function mergeInput(route: FlowRoute, body: unknown, query: Record<string, unknown>, params: Params) {
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
    throw errors.validation([{ field: '', message: 'body must be a JSON object' }])
  }
  const form = isFormBody(body)
  if (form && !route.form) throw errors.unsupportedMediaType('Send the body as application/json')
  const input: Record<string, unknown> = { ...(body as Record<string, unknown> | undefined), ...query }
  for (const key in params) if (params[key] !== undefined) input[key] = params[key]
  if (route.coerce.length > 0) {
    // A form's values are strings, like the query's: converted the same way.
    const fromStrings = new Set([...Object.keys(query), ...Object.keys(params), ...(form ? Object.keys(body as object) : [])])
    coerceInPlace(input, route.coerce, fromStrings)
  }
  return input
}
