// GET /lb-stats and GET /cb-stats (admin): each upstream's targets as the balancer and the breakers
// see them now.
import type { FastifyInstance } from 'fastify'
import type { TokenService } from '../../lib/auth.js'
import { JSON_TYPE, successEnvelope } from '../../lib/envelope.js'
import { adminHook } from '../caller.js'
import { isEjected } from './outlier.js'
import type { Upstreams } from './upstreams.js'

export function registerUpstreamStatsRoutes(app: FastifyInstance, upstreams: Upstreams, tokens: TokenService): void {
  const adminOnly = adminHook(tokens)
  app.get('/lb-stats', { onRequest: adminOnly }, async (request, reply) => {
    const now = Date.now()
    const data = upstreams.upstreams().map((u) => ({
      upstream: u.name,
      balancer: u.balancer.name,
      discover: u.spec.discover ?? null,
      activeRequests: u.budget.active,
      activeRetries: u.budget.retrying,
      targets: u.targets.map((t) => ({
        url: t.url,
        weight: t.weight,
        active: t.active,
        sockets: t.sockets,
        handled: t.handled,
        failures: t.failures,
        ejected: isEjected(t.ejection, now),
        ejectedForMs: Math.max(0, t.ejection.ejectedUntil - now),
        ejections: t.ejection.totalEjections,
        ewmaMs: Math.round(t.ewma.estimate(now) * 1000) / 1000,
        healthy: t.healthy,
        breaker: t.breaker.state(),
      })),
    }))
    return reply.type(JSON_TYPE).send(successEnvelope({ upstreams: data }, 200, request.traceId))
  })
  app.get('/cb-stats', { onRequest: adminOnly }, async (request, reply) => {
    const data = upstreams.upstreams().map((u) => ({
      upstream: u.name,
      settings: u.spec.breaker,
      targets: u.targets.map((t) => ({ url: t.url, ...t.breaker.stats() })),
    }))
    return reply.type(JSON_TYPE).send(successEnvelope({ upstreams: data }, 200, request.traceId))
  })
}
