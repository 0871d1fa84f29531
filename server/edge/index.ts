// Edge protection wired into the gateway in one call: security headers, CORS (off unless origins
// are configured), the blocklist and rate-limit guard (one hook), the completion event, and the
// admin routes that list and lift blocks. A feature that is off costs at most one check.
import cors from '@fastify/cors'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { parseAddress } from '../../lib/address.js'
import type { TokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import { JSON_TYPE, successEnvelope } from '../../lib/envelope.js'
import { errors } from '../../lib/errors.js'
import { adminHook } from '../caller.js'
import type { EventPublisher } from '../events/publisher.js'
import type { Target } from '../resolver.js'
import type { Blocklist } from './blocklist.js'
import { createEdgeGuard } from './rate-limit.js'
import { securityHeaders, type SecurityHeaders } from './security-headers.js'
import type { RateLimitStore } from './token-bucket.js'

export interface EdgeDeps {
  /** Undefined when rate limiting is off. */
  store: RateLimitStore | undefined
  /** Undefined when the blocklist is off. */
  blocklist: Blocklist | undefined
  /** Undefined when events are off. */
  events: EventPublisher | undefined
  tokens: TokenService
  /** What serves the request (resolved once per request). */
  resolve?: (request: FastifyRequest) => Target | undefined
  /** Whether some proxy route declares its own limit now. */
  proxyLimits?: () => boolean
}


/**
 * Registers the edge on the root instance; call it right after the hook that sets the trace id.
 * Returns the security headers, so an HTML page can swap the API's set for the document one.
 */
export async function registerEdge(
  app: FastifyInstance,
  config: Pick<Config, 'corsOrigins' | 'rateLimitCapacity' | 'rateLimitRefillPerSec' | 'rateLimitRoutes' | 'trustProxy'>,
  deps: EdgeDeps,
): Promise<SecurityHeaders> {
  const headers = await securityHeaders()
  if (config.corsOrigins.length > 0) {
    await app.register(cors, { origin: [...config.corsOrigins], exposedHeaders: ['x-trace-id', 'x-request-id', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'] })
  }
  app.decorateRequest('clientAddress', '')
  app.decorateRequest('clientKey', '')
  app.addHook('onRequest', createEdgeGuard(config, { ...deps, securityHeaders: headers.api }))

  const events = deps.events
  if (events !== undefined) {
    // Callback style: no promise per request.
    app.addHook('onResponse', function emitCompleted(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      const latencyMs = reply.elapsedTime
      const ts = Date.now()
      events.emit({
        kind: 'request.completed',
        requestId: request.id,
        traceId: request.traceId,
        method: request.method,
        route: request.routeLabel, // labelled by the completion hook, which runs first
        status: reply.statusCode,
        latencyMs: Math.round(latencyMs * 1000) / 1000,
        startedAt: Math.round(ts - latencyMs),
        clientKey: request.clientKey,
        address: request.clientAddress,
        ...(request.graphql?.type === undefined ? {} : { operationType: request.graphql.type, operationName: request.graphql.name }),
      })
      done()
    })
  }

  registerBlockRoutes(app, deps.blocklist, deps.tokens)
  return headers
}

function registerBlockRoutes(app: FastifyInstance, blocklist: Blocklist | undefined, tokens: TokenService) {
  const required = (): Blocklist => {
    if (!blocklist) throw errors.serviceUnavailable('The blocklist is off (BLOCKLIST_ENABLED=false)')
    return blocklist
  }
  // Who calls comes before what they send: the admin check runs before the params are validated.
  const adminOnly = adminHook(tokens)
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  routes.get('/admin/blocks', { onRequest: adminOnly, config: { summary: 'Live blocks: address, reason, blockedAt, expiresAt' } }, async (request, reply) => {
    const blocks = required().list()
    return reply.type(JSON_TYPE).send(successEnvelope({ blocks }, 200, request.traceId))
  })
  const lift = { summary: 'Lifts the block on an address (IPv4, IPv6 or its /64) on every gateway' }
  routes.delete('/admin/blocks/:address', { onRequest: adminOnly, config: lift, schema: { params: BlockParams } }, async (request, reply) => {
    const address = parseAddress(request.params.address)
    if (!address) throw errors.validation([{ field: 'address', message: 'must be an IPv4 or IPv6 address' }])
    const lifted = await required().lift(address)
    if (!lifted) throw errors.notFound(`No block on ${address}`)
    return reply.type(JSON_TYPE).send(successEnvelope({ address, lifted: true }, 200, request.traceId))
  })
}

const BlockParams = Type.Object({ address: Type.String({ minLength: 1, maxLength: 64 }) })
