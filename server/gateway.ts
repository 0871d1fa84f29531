// The HTTP gateway: each request to a discovered flow route becomes one NATS request-reply.
// buildGateway() is apart from listen() so tests drive it with inject().
import type { RequestListener } from 'node:http'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { NatsConnection } from 'nats'
import type { Registry } from 'prom-client'
import { authorize, type TokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import { parseEnvelope, reviveError } from '../lib/envelope.js'
import { errors } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import { bodyText } from '../lib/nats.js'
import { headers as wire, subjects } from '../lib/subjects.js'
import type { SpanHandle, Tracing } from '../lib/telemetry.js'
import { acceptRequestId, formatTraceparent, parseTraceparent } from '../lib/trace-context.js'
import { ajvFieldErrors } from '../lib/validation.js'
import { RequestHeaders } from '../lib/wire-headers.js'
import { createDiscovery, type Discovery } from './discovery.js'
import type { GatewayHttpServer } from './http-server.js'
import { registerEdge } from './edge/index.js'
import type { EdgeParts } from './edge/start.js'
import { sendError } from './envelope-errors.js'
import { createHttpMetrics } from './metrics.js'
import { openApiDocument, docsPage } from './openapi.js'
import { registerTraceRoutes } from './traces.js'
import { createRequester, type Requester } from './requester.js'
import { coerceInPlace, type FlowRoute } from './routes.js'

declare module 'fastify' {
  interface FastifyRequest {
    traceId: string
    span: SpanHandle | undefined
    tracestate: string | undefined
    /** The route template that served the request (a metrics label; never the raw URL). */
    routeLabel: string
  }
}

export interface GatewayDeps {
  nats: NatsConnection
  log: Logger
  tokens: TokenService
  tracing: Tracing
  registry: Registry
  /** Edge protection (server/edge/start.ts); each part undefined when its feature is off. */
  edge?: EdgeParts
  /** Serve on this already-listening server instead of one of Fastify's own (server/http-server.ts). */
  http?: GatewayHttpServer
}

export interface Gateway {
  app: FastifyInstance
  discovery: Discovery
  requester: Requester
  /** Readiness goes false at once; in-flight requests finish; then everything closes. */
  close(): Promise<void>
}

const JSON_TYPE = 'application/json; charset=utf-8'
const FLOW_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const
const NO_EDGE: EdgeParts = { store: undefined, blocklist: undefined, events: undefined }

export async function buildGateway(config: Config, deps: GatewayDeps): Promise<Gateway> {
  const { nats: nc, log, tokens, tracing } = deps
  const requester = createRequester(nc, { maxPending: config.maxPendingRequests, log })
  const discovery = createDiscovery(nc, config, log)
  const metrics = createHttpMetrics(deps.registry)
  let closing = false

  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // One line per request, written by logCompleted below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: (req) => acceptRequestId(req.headers['x-request-id']),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    return503OnClosing: false,
    routerOptions: { maxParamLength: 200, ignoreTrailingSlash: true },
    ...(deps.http
      ? {
          serverFactory: (handler: RequestListener) => {
            deps.http!.prepare(handler)
            return deps.http!.server
          },
        }
      : {}),
  })
  // JSON only: a text/plain body is a client mistake (415), not a string input.
  app.removeContentTypeParser('text/plain')

  app.decorateRequest('traceId', '')
  app.decorateRequest('span', undefined)
  app.decorateRequest('tracestate', undefined)
  app.decorateRequest('routeLabel', 'unmatched')

  app.addHook('onRequest', function traceRequest(request, reply, done) {
    const incoming = parseTraceparent(request.headers.traceparent, request.headers.tracestate)
    const span = tracing.startSpan(`${request.method} gateway`, incoming.traceId, incoming.parentSpanId)
    request.span = span
    request.traceId = span.traceId
    request.tracestate = incoming.tracestate
    reply.header('x-trace-id', span.traceId)
    reply.header('x-request-id', request.id)
    done()
  })

  // Blocklist and rate limit right after the trace id (so refusals carry it), before body, auth and flow lookup.
  const security = await registerEdge(app, config, { ...(deps.edge ?? NO_EDGE), tokens, routeOf: (m, p) => discovery.table().find(m, p)?.route })

  app.addHook('onResponse', function logCompleted(request, reply, done) {
    const seconds = reply.elapsedTime / 1000
    // Flow calls set their template; the gateway's own routes (/health, /docs, ...) have Fastify's.
    if (request.routeLabel === 'unmatched' && request.routeOptions.url !== undefined && request.routeOptions.url !== '/*') {
      request.routeLabel = request.routeOptions.url
    }
    metrics.observe(request.method, request.routeLabel, reply.statusCode, seconds)
    request.span?.end(reply.statusCode >= 500 ? { code: String(reply.statusCode), message: 'server error' } : undefined)
    request.log.info(
      { method: request.method, route: request.routeLabel, status: reply.statusCode, durationMs: Math.round(reply.elapsedTime * 1000) / 1000, trace_id: request.traceId },
      'request completed',
    )
    done()
  })

  app.setErrorHandler((err, request, reply) => sendError(request, reply, err))
  app.setNotFoundHandler((request, reply) => sendError(request, reply, errors.notFound(`No route ${request.method} ${request.url.split('?')[0]}`)))

  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/ready', async (_request, reply) => {
    const checks = { nats: requester.connected(), flows: discovery.ready(), accepting: !closing }
    const ready = checks.nats && checks.flows && checks.accepting
    return reply.code(ready ? 200 : 503).send({ ready, checks })
  })
  app.get('/metrics', async (_request, reply) => reply.type(deps.registry.contentType).send(await deps.registry.metrics()))
  registerTraceRoutes(app, nc, tokens, log)
  app.get('/docs/json', async () => openApiDocument(discovery.table().routes))
  app.get('/docs', async (_request, reply) => reply.headers(security.document).type('text/html; charset=utf-8').send(docsPage(discovery.table().routes)))

  app.route({ method: [...FLOW_METHODS], url: '/*', handler: callFlow })

  async function callFlow(request: FastifyRequest, reply: FastifyReply) {
    const url = request.url
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const match = discovery.table().find(request.method, path)
    if (!match) {
      if (discovery.table().hasPath(path)) throw errors.methodNotAllowed(`${request.method} is not allowed on ${path}`)
      throw errors.notFound(`No route ${request.method} ${path}`)
    }
    const { route, params } = match
    request.routeLabel = route.path
    const authorization = request.headers.authorization
    if (route.auth !== 'public') authorize(route.auth, authorization, tokens)
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

  return {
    app,
    discovery,
    requester,
    async close() {
      closing = true
      // A keep-alive connection whose request finishes after close() began goes idle but stays open,
      // and the server waits for it: close idle connections until the server has closed.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 100)
      try {
        await app.close()
      } finally {
        clearInterval(sweep)
      }
      discovery.close()
      requester.close()
    },
  }
}

/** Path params over query over body: the path is the most specific thing the caller said. */
function mergeInput(route: FlowRoute, body: unknown, query: Record<string, unknown>, params: Record<string, string | undefined>) {
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
