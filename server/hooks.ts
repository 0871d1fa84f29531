// The request hooks every gateway request passes: the first gives it its trace id, span and path;
// the completion hook labels it once (a route template, never the raw URL), observes its duration,
// ends its span and writes its one log line.
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { SpanHandle, Tracing } from '../lib/telemetry.js'
import { isSampled, parseTraceparent } from '../lib/trace-context.js'
import type { HttpMetrics } from './metrics.js'
import type { RecentRequests } from './recent.js'
import type { Target } from './resolver.js'

declare module 'fastify' {
  interface FastifyRequest {
    traceId: string
    span: SpanHandle | undefined
    tracestate: string | undefined
    /** The URL's path without the query, split once per request. */
    urlPath: string
    /** The route template that served the request: set by the route, or at completion from Fastify's own routes. */
    routeLabel: string
    /** The envelope error code of an error answer (set where the answer is made), for metrics and the span. */
    errorCode: string | undefined
  }
}

export const UNMATCHED = 'unmatched'
/** The catch-all route's URL: the flow (and proxy) route behind it labels itself. */
export const CATCH_ALL = '/*'

/** Declares the per-request fields, so every request object has the same shape. */
export function decorateRequests(app: FastifyInstance): void {
  app.decorateRequest('traceId', '')
  app.decorateRequest('span', undefined)
  app.decorateRequest('tracestate', undefined)
  app.decorateRequest('urlPath', '')
  app.decorateRequest('routeLabel', UNMATCHED)
  app.decorateRequest('errorCode', undefined)
  app.decorateRequest('caller', undefined)
  app.decorateRequest('target', undefined)
  app.decorateRequest('upstream', undefined)
}

/** The route template of a finished request; Fastify's `routeOptions` builds an object per read, so it is read once here. */
export function labelOf(request: FastifyRequest): string {
  if (request.routeLabel === UNMATCHED) {
    const url = request.routeOptions.url
    if (url !== undefined && url !== CATCH_ALL) request.routeLabel = url
  }
  return request.routeLabel
}

/** The first onRequest hook, and the first onResponse hook: register before the edge's. */
export function registerRequestHooks(
  app: FastifyInstance,
  deps: {
    tracing: Tracing
    metrics: HttpMetrics
    recent?: RecentRequests
    /** What would have served a request refused before its route ran (rate limit, blocklist), for its label. */
    resolve?: (request: FastifyRequest) => Target | undefined
  },
): void {
  const { tracing, metrics, recent, resolve } = deps
  app.addHook('onRequest', function traceRequest(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const url = request.url
    const q = url.indexOf('?')
    request.urlPath = q === -1 ? url : url.slice(0, q)
    const incoming = parseTraceparent(request.headers.traceparent, request.headers.tracestate)
    const span = tracing.enabled
      ? tracing.startSpan(request.method, incoming.traceId, incoming.parentSpanId, undefined, { kind: 'server', sampled: isSampled(incoming.flags) })
      : tracing.startSpan(request.method, incoming.traceId, incoming.parentSpanId)
    // The attributes are built only for a recorded span: tracing off, or a request sampled out, pays this one branch.
    if (span.recording) span.setAttributes(serverAttributes(request))
    request.span = span
    request.traceId = span.traceId
    request.tracestate = incoming.tracestate
    reply.header('x-trace-id', span.traceId)
    reply.header('x-request-id', request.id)
    done()
  })

  app.addHook('onResponse', function completeRequest(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    let route = labelOf(request)
    if (route === UNMATCHED && resolve !== undefined) route = request.routeLabel = resolve(request)?.template ?? UNMATCHED
    const status = reply.statusCode
    const durationMs = Math.round(reply.elapsedTime * 1000) / 1000
    metrics.observe(request.method, route, status, reply.elapsedTime / 1000, request.errorCode)
    if (request.span?.recording) endServerSpan(request, route, status)
    const line = { method: request.method, route, status, durationMs, trace_id: request.traceId }
    const graphql = request.graphql
    request.log.info(graphql === undefined ? line : { ...line, graphql_operation_type: graphql.type, graphql_operation_name: graphql.name }, 'request completed')
    recent?.record({
      startedAt: Math.round(Date.now() - reply.elapsedTime),
      method: request.method,
      route,
      status,
      durationMs,
      client: request.clientAddress || request.ip || '',
      traceId: request.traceId,
      requestId: request.id,
      flow: request.target?.kind === 'flow' ? request.target.route.flow : undefined,
      upstream: request.upstream,
    })
    done()
  })
}

/** The HTTP server span's attributes known at the start (semantic conventions, stable HTTP). */
function serverAttributes(request: FastifyRequest) {
  return {
    'http.request.method': request.method,
    'url.path': request.urlPath,
    'url.scheme': request.protocol,
    'client.address': request.ip,
    'network.protocol.version': request.raw.httpVersion,
    'user_agent.original': request.headers['user-agent'],
  }
}

/** Names the span after its route template (`GET /api/v1/admin/list`) and records the status; a 5xx is an error. */
function endServerSpan(request: FastifyRequest, route: string, status: number) {
  const error = status >= 500 ? { code: request.errorCode ?? String(status), message: `HTTP ${status}`, status } : undefined
  request.span?.end(error, {
    name: route === UNMATCHED ? request.method : `${request.method} ${route}`,
    attributes: { 'http.route': route === UNMATCHED ? undefined : route, 'http.response.status_code': status, 'flowgate.request_id': request.id },
  })
}
