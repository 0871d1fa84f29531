// The gateway's own routes for operators: liveness, readiness, Prometheus metrics and the API docs.
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { errors, type FlowgateError } from '../lib/errors.js'
import type { OwnRoute } from './own-routes.js'
import type { RouteTable } from './routes.js'
import { docsPage, openApiDocument } from './openapi.js'

export interface OpsDeps {
  registry: Registry
  /** Each readiness check by name; ready when all are true. */
  readiness: () => Record<string, boolean>
  /** What an operator should see beside the checks (e.g. refused route claims); omitted when empty. */
  details?: () => Record<string, unknown>
  routes: () => RouteTable
  /** The gateway's own routes (these, the admin routes…), listed in the docs beside the flows. */
  ownRoutes: () => readonly OwnRoute[]
  /** Headers of an HTML page, in place of the API's (helmet's defaults). */
  documentHeaders: Readonly<Record<string, string>>
}

export function registerOpsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  app.get('/health', { config: { summary: 'Liveness: the process answers' } }, async () => ({ status: 'ok' }))
  app.get('/ready', { config: { summary: 'Readiness: NATS connected, flows discovered, not shutting down (503 otherwise)' } }, async () => {
    const checks = deps.readiness()
    if (!Object.values(checks).every(Boolean)) throw notReady(checks)
    return { ready: true, checks, ...deps.details?.() }
  })
  app.get('/metrics', { config: { summary: 'Prometheus metrics' } }, async (_request, reply) =>
    reply.type(deps.registry.contentType).send(await deps.registry.metrics()),
  )
  app.get('/docs/json', { config: { summary: 'This OpenAPI 3.1 document' } }, async () => openApiDocument(deps.routes().routes, deps.ownRoutes()))
  app.get('/docs', { config: { summary: 'The routes, as an HTML page' } }, async (_request, reply) =>
    reply.headers(deps.documentHeaders).type('text/html; charset=utf-8').send(docsPage(deps.routes().routes, deps.ownRoutes())),
  )
}

/** /ready's refusal: the envelope, each failing check a `detailed` entry. */
export function notReady(checks: Record<string, boolean>): FlowgateError {
  const failing = Object.keys(checks).filter((name) => !checks[name])
  return errors.serviceUnavailable(`Not ready: ${failing.join(', ')}`, { detailed: failing.map((field) => ({ field, message: 'not ready' })) })
}
