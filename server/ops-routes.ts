// The gateway's own routes for operators: liveness, readiness, Prometheus metrics and the API docs.
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import type { RouteTable } from './routes.js'
import { docsPage, openApiDocument } from './openapi.js'

export interface OpsDeps {
  registry: Registry
  /** Each readiness check by name; ready when all are true. */
  readiness: () => Record<string, boolean>
  /** What an operator should see beside the checks (e.g. refused route claims); omitted when empty. */
  details?: () => Record<string, unknown>
  routes: () => RouteTable
  /** Headers of an HTML page, in place of the API's (helmet's defaults). */
  documentHeaders: Readonly<Record<string, string>>
}

export function registerOpsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/ready', async (_request, reply) => {
    const checks = deps.readiness()
    const ready = Object.values(checks).every(Boolean)
    return reply.code(ready ? 200 : 503).send({ ready, checks, ...deps.details?.() })
  })
  app.get('/metrics', async (_request, reply) => reply.type(deps.registry.contentType).send(await deps.registry.metrics()))
  app.get('/docs/json', async () => openApiDocument(deps.routes().routes))
  app.get('/docs', async (_request, reply) => reply.headers(deps.documentHeaders).type('text/html; charset=utf-8').send(docsPage(deps.routes().routes)))
}
