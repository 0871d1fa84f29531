// The flow route: one HTTP request becomes one NATS request-reply on the flow's subject. Auth and
// edge validation happen here, before anything crosses the bus; the flow's envelope goes back as it came.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { NatsConnection } from 'nats'
import { authorize, type TokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import { JSON_TYPE, parseEnvelope, reviveError } from '../lib/envelope.js'
import { errors, FlowgateError, isErrorCode, isPublicMessage } from '../lib/errors.js'
import { bodyText } from '../lib/nats.js'
import { headers as wire, subjects } from '../lib/subjects.js'
import { formatTraceparent, newCallId } from '../lib/trace-context.js'
import { ajvFieldErrors } from '../lib/validation.js'
import { RequestHeaders } from '../lib/wire-headers.js'
import { callerOf } from './caller.js'
import type { Requester } from './requester.js'
import type { FlowTarget, Params } from './resolver.js'
import { coerceInPlace, type FlowRoute } from './routes.js'

export interface FlowRouteDeps {
  nats: NatsConnection
  requester: Requester
  tokens: TokenService
  /** Whether another service also answers on the subject (server/discovery.ts). */
  contested: (subject: string) => boolean
}

export type FlowHandler = (request: FastifyRequest, reply: FastifyReply, target: FlowTarget) => Promise<FastifyReply>

export function createFlowHandler(config: Pick<Config, 'requestTimeoutMs'>, deps: FlowRouteDeps): FlowHandler {
  const { nats: nc, requester, tokens } = deps
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
      throw errors.payloadTooLarge(`Request is ${payload.length} bytes; the message bus accepts at most ${requester.maxPayload()}`)
    }
    const timeoutMs = route.timeoutMs ?? config.requestTimeoutMs
    const callId = newCallId()
    const h = new RequestHeaders()
      .put(wire.traceparent, formatTraceparent(request.traceId, request.span?.spanId ?? '0000000000000001'))
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
      const msg = await requester.request(route.subject, payload, h, timeoutMs)
      // Decoded once: parsed to check the envelope, then sent as it came (a string body goes out with the headers in one write).
      const text = bodyText(msg.data)
      const envelope = parseEnvelope(text)
      // The worker answers in the trace it was given; anything else did not come from the call we made.
      if (envelope.traceId !== request.traceId) throw errors.badGateway('Flow replied for another trace')
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

/** Path params over query over body: the path is the most specific thing the caller said. */
function mergeInput(route: FlowRoute, body: unknown, query: Record<string, unknown>, params: Params) {
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
    throw errors.validation([{ field: '', message: 'body must be a JSON object' }])
  }
  const input: Record<string, unknown> = { ...(body as Record<string, unknown> | undefined), ...query }
  for (const key in params) if (params[key] !== undefined) input[key] = params[key]
  if (route.coerce.length > 0) {
    const fromStrings = new Set([...Object.keys(query), ...Object.keys(params)])
    coerceInPlace(input, route.coerce, fromStrings)
  }
  return input
}
