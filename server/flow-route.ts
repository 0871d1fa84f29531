// The flow route: one HTTP request becomes one NATS request-reply on the flow's subject. Auth and
// edge validation happen here, before anything crosses the bus; the flow's envelope goes back as it came.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { NatsConnection } from 'nats'
import { authorize, type TokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import { JSON_TYPE, parseEnvelope, reviveError } from '../lib/envelope.js'
import { errors } from '../lib/errors.js'
import { bodyText } from '../lib/nats.js'
import { headers as wire, subjects } from '../lib/subjects.js'
import { formatTraceparent } from '../lib/trace-context.js'
import { ajvFieldErrors } from '../lib/validation.js'
import { RequestHeaders } from '../lib/wire-headers.js'
import { callerOf } from './caller.js'
import { isFormBody } from './form-body.js'
import type { Requester } from './requester.js'
import type { FlowTarget, Params } from './resolver.js'
import { coerceInPlace, type FlowRoute } from './routes.js'

export interface FlowRouteDeps {
  nats: NatsConnection
  requester: Requester
  tokens: TokenService
}

export type FlowHandler = (request: FastifyRequest, reply: FastifyReply, target: FlowTarget) => Promise<FastifyReply>

export function createFlowHandler(config: Pick<Config, 'requestTimeoutMs'>, deps: FlowRouteDeps): FlowHandler {
  const { nats: nc, requester, tokens } = deps
  return async function callFlow(request, reply, target) {
    const { route, params } = target
    request.routeLabel = target.template
    if (route.auth !== 'public') authorize(route.auth, callerOf(request, tokens))
    const input = mergeInput(route, request.body, request.query as Record<string, unknown>, params)
    if (!route.validate(input)) throw errors.validation(ajvFieldErrors(route.validate.errors))

    const payload = Buffer.from(JSON.stringify(input))
    // Checked here: the server would drop an oversized publish and the caller would wait for nothing.
    if (payload.length > requester.maxPayload()) {
      throw errors.payloadTooLarge(`Request is ${payload.length} bytes; the message bus accepts at most ${requester.maxPayload()}`)
    }
    const timeoutMs = route.timeoutMs ?? config.requestTimeoutMs
    const h = new RequestHeaders()
      .put(wire.traceparent, formatTraceparent(request.traceId, request.span?.spanId ?? '0000000000000001'))
      .put(wire.requestId, request.id)
      .put(wire.deadline, String(Date.now() + timeoutMs))
    if (request.tracestate) h.put(wire.tracestate, request.tracestate)
    const authorization = request.headers.authorization
    if (authorization) h.put(wire.authorization, authorization)

    const raw = reply.raw
    const onClose = () => {
      // The connection closed before the answer was written: the caller went away, so ask the worker to abort the run.
      if (!raw.writableEnded) nc.publish(subjects.cancel, request.id)
    }
    raw.once('close', onClose)
    try {
      const msg = await requester.request(route.subject, payload, h, timeoutMs)
      // Decoded once: parsed to check the envelope, then sent as it came (a string body goes out with the headers in one write).
      const text = bodyText(msg.data)
      const envelope = parseEnvelope(text)
      // A failing flow from another codebase may put internals in a 500 message: re-shape it here.
      if (!envelope.success && envelope.status >= 500 && envelope.errorCode === 'INTERNAL_ERROR' && envelope.message !== 'Internal error') {
        throw reviveError({ ...envelope, message: 'Internal error' })
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
