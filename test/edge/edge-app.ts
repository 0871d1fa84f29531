// A minimal Fastify app with the edge registered the way buildGateway does it, for inject() tests
// without NATS: the same request hooks and error handler, and three routes.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import pino, { type Logger } from 'pino'
import { Registry } from 'prom-client'
import { createTokenService } from '../../lib/auth.js'
import { parseConfig, type Config } from '../../lib/config.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { sendError } from '../../server/envelope-errors.js'
import { registerEdge, type EdgeDeps } from '../../server/edge/index.js'
import { decorateRequests, registerRequestHooks } from '../../server/hooks.js'
import { createHttpMetrics } from '../../server/metrics.js'

export const silent = pino({ level: 'silent' })

export function testConfig(overrides: Record<string, unknown> = {}): Config {
  return parseConfig({ nodeEnv: 'test', logLevel: 'silent', ...overrides })
}

export async function edgeApp(config: Config, deps: Partial<EdgeDeps> = {}, log: Logger = silent): Promise<FastifyInstance> {
  const app = Fastify({
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    loggerInstance: log as FastifyBaseLogger,
    routerOptions: { ignoreTrailingSlash: true },
  })
  decorateRequests(app)
  registerRequestHooks(app, { tracing: disabledTracing, metrics: createHttpMetrics(new Registry()) })
  await registerEdge(app, config, {
    store: undefined,
    blocklist: undefined,
    events: undefined,
    tokens: createTokenService(config),
    ...deps,
  })
  app.setErrorHandler((err, request, reply) => sendError(request, reply, err))
  app.get('/api/v1/things', async (request) => {
    request.routeLabel = '/api/v1/things'
    return { ok: true }
  })
  app.post('/api/v1/admin/login', async () => ({ ok: true }))
  app.get('/health', async () => ({ status: 'ok' }))
  app.get('/ready', async () => ({ ready: true }))
  app.get('/metrics', async () => 'metrics')
  app.get('/docs', async () => 'docs')
  await app.ready()
  return app
}
