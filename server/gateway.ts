// The HTTP gateway, composed: request hooks, the edge, the ops and admin routes, and the catch-all
// that hands each request to what serves it (a flow route). buildGateway() is apart from listen()
// so tests drive it with inject().
import type { RequestListener } from 'node:http'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { NatsConnection } from 'nats'
import type { Registry } from 'prom-client'
import type { TokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import type { Tracing } from '../lib/telemetry.js'
import { acceptRequestId } from '../lib/trace-context.js'
import { createDiscovery, type Discovery } from './discovery.js'
import { registerEdge } from './edge/index.js'
import type { EdgeParts } from './edge/start.js'
import { answerFrameworkError, createClientErrorHandler } from './client-errors.js'
import { sendError } from './envelope-errors.js'
import { createFlowHandler } from './flow-route.js'
import { registerFormBody } from './form-body.js'
import { CATCH_ALL, decorateRequests, registerRequestHooks } from './hooks.js'
import { drain, type GatewayHttpServer } from './http-server.js'
import { createHttpMetrics } from './metrics.js'
import { registerOpsRoutes } from './ops-routes.js'
import { indexOwnRoutes, notServed } from './own-routes.js'
import { createRequester, type Requester } from './requester.js'
import { createRecentRequests, type RecentRequests } from './recent.js'
import { createResolver, targetOf } from './resolver.js'
import { registerTraceRoutes } from './traces.js'

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
  /** The last requests answered (bounded). */
  recent: RecentRequests
  /** Readiness goes false at once; the server stops accepting and in-flight requests finish; then everything closes. */
  close(): Promise<void>
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const
/** Requests kept for operators to look at (`recent`). */
const RECENT_REQUESTS = 1000
const NO_EDGE: EdgeParts = { store: undefined, blocklist: undefined, events: undefined }

export async function buildGateway(config: Config, deps: GatewayDeps): Promise<Gateway> {
  const { nats: nc, log, tokens, tracing } = deps
  const requester = createRequester(nc, { maxPending: config.maxPendingRequests, log })
  const discovery = createDiscovery(nc, config, log)
  const resolver = createResolver(() => discovery.table())
  let closing = false

  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // One line per request, written by the completion hook, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    genReqId: (req) => acceptRequestId(req.headers['x-request-id']),
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    return503OnClosing: false,
    routerOptions: { maxParamLength: 200, ignoreTrailingSlash: true },
    requestTimeout: config.httpRequestTimeoutMs,
    // What Node's parser and Fastify's router refuse answers as the envelope too.
    clientErrorHandler: deps.http?.clientErrorHandler ?? createClientErrorHandler(log),
    frameworkErrors: answerFrameworkError,
    ...(deps.http ? { serverFactory: (handler: RequestListener) => (deps.http!.prepare(handler), deps.http!.server) } : {}),
  })
  const own = indexOwnRoutes(app)
  // JSON only: a text/plain body is a client mistake (415), not a string input. Forms only for the
  // flows that declare them (the OAuth2 token endpoint).
  app.removeContentTypeParser('text/plain')
  registerFormBody(app)

  decorateRequests(app)
  const recent = createRecentRequests(RECENT_REQUESTS)
  registerRequestHooks(app, { tracing, metrics: createHttpMetrics(deps.registry), recent })
  // Blocklist and rate limit right after the trace id (so refusals carry it), before body, auth and routing.
  const security = await registerEdge(app, config, { ...(deps.edge ?? NO_EDGE), tokens, resolve: (request) => targetOf(request, resolver) })

  app.setErrorHandler((err, request, reply) => sendError(request, reply, err))
  app.setNotFoundHandler((request, reply) => sendError(request, reply, notServed(request, own, resolver)))

  registerOpsRoutes(app, {
    registry: deps.registry,
    readiness: () => ({ nats: requester.connected(), flows: discovery.ready(), accepting: !closing }),
    routes: () => discovery.table(),
    ownRoutes: () => own.list(),
    documentHeaders: security.document,
  })
  registerTraceRoutes(app, nc, tokens, log)

  const callFlow = createFlowHandler(config, { nats: nc, requester, tokens })
  app.route({
    method: [...METHODS],
    url: CATCH_ALL,
    handler: async function route(request: FastifyRequest, reply: FastifyReply) {
      const target = targetOf(request, resolver)
      if (target !== undefined) return callFlow(request, reply, target)
      throw notServed(request, own, resolver)
    },
  })

  return {
    app,
    discovery,
    requester,
    recent,
    async close() {
      closing = true
      // The one place the server stops: on the server the gateway was handed, or on Fastify's own.
      await drain(app.server, async () => {
        await deps.http?.close()
        await app.close()
      })
      discovery.close()
      requester.close()
    },
  }
}
