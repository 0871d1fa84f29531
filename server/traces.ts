// GET /traces/:traceId (admin): the recorded steps of one request, read back from the trace stream.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import type { NatsConnection } from 'nats'
import type { TokenService } from '../lib/auth.js'
import { JSON_TYPE, successEnvelope } from '../lib/envelope.js'
import { errors } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import { readTrace } from '../lib/trace-stream.js'
import { TraceId } from '../schemas/envelope.js'
import { adminHook } from './caller.js'

const TraceParams = Type.Object({ traceId: TraceId })

export function registerTraceRoutes(app: FastifyInstance, nc: NatsConnection, tokens: TokenService, log: Logger): void {
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  routes.get('/traces/:traceId', { onRequest: adminHook(tokens), schema: { params: TraceParams } }, async (request, reply) => {
    const { traceId } = request.params
    let steps
    try {
      steps = await readTrace(nc, traceId)
    } catch (err) {
      log.warn({ err }, 'trace read failed')
      throw errors.serviceUnavailable('Trace stream unavailable')
    }
    if (steps.length === 0) throw errors.notFound(`No steps recorded for trace ${traceId}`)
    return reply.type(JSON_TYPE).send(successEnvelope({ traceId, steps }, 200, request.traceId))
  })
}
