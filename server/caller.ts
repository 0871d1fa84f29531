// Who is calling, verified once per request and carried on it: the edge keys a rate limit by the
// token's subject and a route checks its policy, without verifying the token twice.
import type { FastifyRequest } from 'fastify'
import { identify, type Caller, type TokenService } from '../lib/auth.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by callerOf() on first use. */
    caller: Caller | undefined
  }
}

export function callerOf(request: FastifyRequest, tokens: TokenService): Caller {
  return (request.caller ??= identify(request.headers.authorization, tokens))
}
