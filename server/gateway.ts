// The HTTP gateway, composed: request hooks, the edge, the ops and admin routes, and the catch-all
// that hands each request to what serves it (a flow route or a proxy route). buildGateway() is apart
// from listen() so tests drive it with inject().
import type { RequestListener } from 'node:http'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
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
import { registerCatchAll } from './catch-all.js'
import { createFlowHandler } from './flow-route.js'
import { decorateRequests, registerRequestHooks } from './hooks.js'
import { drain, type GatewayHttpServer } from './http-server.js'
import { createHttpMetrics } from './metrics.js'
import { registerOpsRoutes } from './ops-routes.js'
import { indexOwnRoutes, notServed } from './own-routes.js'
import { createRequester, type Requester } from './requester.js'
import { createRecentRequests, type RecentRequests } from './recent.js'
import { createResolver, targetOf } from './resolver.js'
import { registerTelemetryRoute } from './telemetry-route.js'
import { registerTraceRoutes } from './traces.js'
import { createGraphqlHandler } from './upstream/graphql.js'
import { createGraphqlMetrics, registerGraphqlHooks } from './upstream/graphql-metrics.js'
import { createProxyHandler, type ProxyDeps } from './upstream/proxy.js'
import { startDiscoverySources } from './upstream/sources.js'
import { registerUpstreamStatsRoutes } from './upstream/stats-routes.js'
import { createUpstreams, type Upstreams } from './upstream/upstreams.js'
import { createWebSockets, type WebSockets } from './upstream/websockets.js'

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
  /** Proxy routes and their upstream pools (services file, discovery). */
  upstreams: Upstreams
  /** The last requests answered (bounded). */
  recent: RecentRequests
  /** Proxied WebSockets: the open ones and their limits. */
  websockets: WebSockets
  /** Readiness goes false at once; the server stops accepting and in-flight requests finish; then everything closes. */
  close(): Promise<void>
}

/** Flows use the first five; proxy routes all of them (OPTIONS belongs to CORS when CORS is on). */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']
/** Requests kept for operators to look at (`recent`). */
const RECENT_REQUESTS = 1000
const NO_EDGE: EdgeParts = { store: undefined, blocklist: undefined, events: undefined }

export async function buildGateway(config: Config, deps: GatewayDeps): Promise<Gateway> {
  const { nats: nc, log, tokens, tracing } = deps
  const metrics = createHttpMetrics(deps.registry)
  const requester = createRequester(nc, { maxPending: config.maxPendingRequests, log, onOutcome: metrics.flowCall })
  const discovery = createDiscovery(nc, config, log, deps.registry)
  const upstreams = await createUpstreams(config, { log, registry: deps.registry, events: deps.edge?.events, flows: () => discovery.table() })
  const sources = startDiscoverySources(config, nc, upstreams, log)
  const resolver = createResolver(() => discovery.table(), () => upstreams.table())
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
  // flows that declare them (the OAuth2 token endpoint), in the catch-all's own parser.
  app.removeContentTypeParser('text/plain')

  decorateRequests(app)
  const recent = createRecentRequests(RECENT_REQUESTS)
  registerRequestHooks(app, { tracing, metrics, recent, resolve: (request) => targetOf(request, resolver) })
  const graphqlMetrics = createGraphqlMetrics(deps.registry)
  registerGraphqlHooks(app, graphqlMetrics)
  // Blocklist and rate limit right after the trace id (so refusals carry it), before body, auth and routing.
  const security = await registerEdge(app, config, {
    ...(deps.edge ?? NO_EDGE),
    tokens,
    resolve: (request) => targetOf(request, resolver),
    proxyLimits: () => upstreams.hasRateLimits(),
  })

  const securityHeaderNames = new Set(Object.keys(security.api))
  // Upgrades meet the edge above; past it only a proxy route with `websocket` takes one.
  const websockets = createWebSockets(app, config, {
    log, tokens, tracing, registry: deps.registry, events: deps.edge?.events, recent, http: metrics, upstreamMetrics: upstreams.metrics, securityHeaderNames,
    resolve: (request) => targetOf(request, resolver),
  })
  websockets.listen(deps.http)

  app.setErrorHandler((err, request, reply) => sendError(request, reply, err))
  app.setNotFoundHandler((request, reply) => sendError(request, reply, notServed(request, own, resolver)))

  registerOpsRoutes(app, {
    registry: deps.registry,
    readiness: () => ({ nats: requester.connected(), flows: discovery.ready(), accepting: !closing }),
    details: () => (discovery.conflicts().length > 0 ? { conflicts: discovery.conflicts().slice(0, 20) } : {}),
    routes: () => discovery.table(),
    ownRoutes: () => own.list(),
    documentHeaders: security.document,
  })
  registerTraceRoutes(app, { nats: nc, tokens, log, recent, documentHeaders: security.document })
  registerTelemetryRoute(app, recent, tokens)
  registerUpstreamStatsRoutes(app, upstreams, tokens)

  const proxyDeps: ProxyDeps = { tokens, tracing, log, metrics: upstreams.metrics, securityHeaderNames }
  await registerCatchAll(app, {
    resolver,
    callFlow: createFlowHandler(config, { nats: nc, requester, tokens, contested: discovery.contested, tracing, metrics }),
    proxy: createProxyHandler(proxyDeps, createGraphqlHandler(proxyDeps, graphqlMetrics)),
    proxyUpgrade: websockets.handler,
    bodyLimitBytes: config.bodyLimitBytes,
    methods: config.corsOrigins.length > 0 ? METHODS.filter((m) => m !== 'OPTIONS') : METHODS,
    notServed: (request) => notServed(request, own, resolver),
  })

  return {
    app,
    discovery,
    requester,
    upstreams,
    recent,
    websockets,
    async close() {
      closing = true
      await websockets.close()
      // The one place the server stops: on the server the gateway was handed, or on Fastify's own.
      await drain(app.server, async () => {
        await deps.http?.close()
        await app.close()
      })
      discovery.close()
      requester.close()
      sources.close()
      await upstreams.close()
    },
  }
}
