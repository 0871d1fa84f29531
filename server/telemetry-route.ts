// GET /telemetry (admin): the last requests this gateway answered, newest first, from the bounded
// ring of server/recent.ts: method, route template, status, latency, client, flow or upstream target.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import type { TokenService } from '../lib/auth.js'
import { JSON_TYPE, successEnvelope } from '../lib/envelope.js'
import { adminHook } from './caller.js'
import type { RecentRequests } from './recent.js'

const Query = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    route: Type.Optional(Type.String({ maxLength: 512 })),
    flow: Type.Optional(Type.String({ maxLength: 128 })),
    status: Type.Optional(Type.Integer({ minimum: 1, maximum: 599 })),
    minDurationMs: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
)

export function registerTelemetryRoute(app: FastifyInstance, recent: RecentRequests, tokens: TokenService): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  routes.get('/telemetry', { onRequest: adminHook(tokens), schema: { querystring: Query } }, async (request, reply) => {
    const requests = recent.list({ limit: 100, ...request.query })
    return reply.type(JSON_TYPE).send(successEnvelope({ capacity: recent.capacity, count: requests.length, requests }, 200, request.traceId))
  })
}
