// Metrics of GraphQL routes, per operation: the duration of forwarded requests and every request by
// outcome. Labels are bounded: upstream and route come from the services file; the operation name is
// one of the first `maxOperationNames` distinct names seen on its route (later ones `other`), a name
// longer than MAX_OPERATION_NAME is `other` too, an anonymous operation `(anonymous)`, and a request
// refused before its operation was known `(unknown)` (names never hold parentheses, so these never
// clash with one).
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { Counter, Histogram, type Registry } from 'prom-client'
import { boundedLabel, OTHER } from '../../lib/metrics.js'
import type { OperationType } from './graphql-document.js'
import { MAX_OPERATION_NAME } from './graphql-settings.js'

export const ANONYMOUS = '(anonymous)'
export const UNKNOWN = '(unknown)'
/** Routes whose operation names are tracked; a services file holds at most 1000 routes, reloads may rename some. */
const MAX_ROUTES = 2000

/** What a GraphQL route learned of a request, for its metrics, log line, span and completion event. */
export interface GraphqlInfo {
  upstream: string
  route: string
  /** Undefined when the request was refused before its operation was known. */
  type: OperationType | undefined
  /** The operation's name (at most MAX_OPERATION_NAME characters); undefined when anonymous or unknown. */
  name: string | undefined
  /** The metrics label of the name (bounded per route). */
  label: string
  /** The gateway answered it itself (not forwarded). */
  refused: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on a GraphQL route once the request was looked at. */
    graphql: GraphqlInfo | undefined
  }
}

export type GraphqlOutcome = 'ok' | 'client_error' | 'server_error' | 'failed' | 'refused'

export interface GraphqlMetrics {
  /** The label of an operation name on a route (first `max` names per route; later ones `other`). */
  nameLabel(route: string, max: number, type: OperationType | undefined, name: string | undefined): string
  observe(info: GraphqlInfo, outcome: GraphqlOutcome, seconds: number): void
}

export function createGraphqlMetrics(registry: Registry): GraphqlMetrics {
  const duration = new Histogram({
    name: 'flowgate_graphql_request_duration_seconds',
    help: 'GraphQL requests forwarded by a GraphQL route, by operation, to the end of the answer',
    labelNames: ['upstream', 'route', 'operation_type', 'operation_name'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const requests = new Counter({
    name: 'flowgate_graphql_requests_total',
    help: 'GraphQL requests by operation and outcome (ok, client_error, server_error: the upstream answered; failed: the gateway could not reach it; refused: the gateway answered)',
    labelNames: ['upstream', 'route', 'operation_type', 'operation_name', 'outcome'] as const,
    registers: [registry],
  })
  const routes = new Map<string, { max: number; label: (name: string) => string }>()
  return {
    nameLabel(route, max, type, name) {
      if (type === undefined) return UNKNOWN
      if (name === undefined) return ANONYMOUS
      if (name.length > MAX_OPERATION_NAME) return OTHER
      let guard = routes.get(route)
      // A reload that changes the limit starts the count again (the series already out stay until restart).
      if (guard === undefined || guard.max !== max) {
        if (guard === undefined && routes.size >= MAX_ROUTES) return OTHER
        guard = { max, label: boundedLabel(max) }
        routes.set(route, guard)
      }
      return guard.label(name)
    },
    observe(info, outcome, seconds) {
      const type = info.type ?? UNKNOWN
      requests.inc({ upstream: info.upstream, route: info.route, operation_type: type, operation_name: info.label, outcome })
      // Latency per operation is that of the requests that went to the upstream.
      if (!info.refused) duration.observe({ upstream: info.upstream, route: info.route, operation_type: type, operation_name: info.label }, seconds)
    },
  }
}

/** Declares `request.graphql` and observes each finished GraphQL request (one check for any other request). */
export function registerGraphqlHooks(app: FastifyInstance, metrics: GraphqlMetrics): void {
  app.decorateRequest('graphql', undefined)
  app.addHook('onResponse', function observeGraphql(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const info = request.graphql
    if (info !== undefined) metrics.observe(info, outcomeOf(info, request, reply.statusCode), reply.elapsedTime / 1000)
    done()
  })
}

function outcomeOf(info: GraphqlInfo, request: FastifyRequest, status: number): GraphqlOutcome {
  if (info.refused) return 'refused'
  // The gateway's own failure answer (no target, timeout, broken answer) carries its error code.
  if (request.errorCode !== undefined) return 'failed'
  return status >= 500 ? 'server_error' : status >= 400 ? 'client_error' : 'ok'
}
