// GET /traces/:traceId (admin): the recorded steps of one request, read back from the trace stream.
import type { FastifyInstance } from 'fastify'
import type { NatsConnection } from 'nats'
import { authorize, type TokenService } from '../lib/auth.js'
import { JSON_TYPE, successEnvelope } from '../lib/envelope.js'
import { errors } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import { readTrace } from '../lib/trace-stream.js'
import { callerOf } from './caller.js'

const TRACE_ID = /^[0-9a-f]{32}$/

export function registerTraceRoutes(app: FastifyInstance, nc: NatsConnection, tokens: TokenService, log: Logger): void {
  app.get('/traces/:traceId', async (request, reply) => {
    authorize({ roles: ['admin'] }, callerOf(request, tokens))
    const { traceId } = request.params as { traceId: string }
    if (!TRACE_ID.test(traceId)) throw errors.validation([{ field: 'traceId', message: 'must be 32 lower-case hex digits' }])
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
