// A minimal Fastify app with the edge registered the way buildGateway does it, for inject() tests
// without NATS: the same error handler, a trace id hook, and two routes.
import Fastify, { type FastifyInstance } from 'fastify'
import pino from 'pino'
import { createTokenService } from '../../lib/auth.js'
import { parseConfig, type Config } from '../../lib/config.js'
import { sendError } from '../../server/envelope-errors.js'
import { registerEdge, type EdgeDeps } from '../../server/edge/index.js'

export const silent = pino({ level: 'silent' })

export function testConfig(overrides: Record<string, unknown> = {}): Config {
  return parseConfig({ nodeEnv: 'test', logLevel: 'silent', ...overrides })
}

export async function edgeApp(config: Config, deps: Partial<EdgeDeps> = {}): Promise<FastifyInstance> {
  const app = Fastify({ trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false })
  app.decorateRequest('traceId', '')
  app.decorateRequest('routeLabel', 'unmatched')
  app.addHook('onRequest', async (request, reply) => {
    request.traceId = '0af7651916cd43dd8448eb211c80319c'
    reply.header('x-trace-id', request.traceId)
  })
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
  await app.ready()
  return app
}
