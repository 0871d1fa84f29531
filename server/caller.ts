// Who is calling, verified once per request and carried on it: the edge keys a rate limit by the
// token's subject and a route checks its policy, without verifying the token twice.
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { authorize, identify, type AuthPolicy, type Caller, type TokenService } from '../lib/auth.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by callerOf() on first use. */
    caller: Caller | undefined
  }
}

export function callerOf(request: FastifyRequest, tokens: TokenService): Caller {
  return (request.caller ??= identify(request.headers.authorization, tokens))
}

const ADMIN: AuthPolicy = { roles: ['admin'] }
/** Carried by a route hook that enforces a policy, so the docs can say who may call the route. */
const POLICY = Symbol('flowgate.policy')

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

/** Marks a route hook with the policy it enforces (the docs read it: `policyOfHooks`). */
export function enforcing<H extends Hook>(policy: AuthPolicy, hook: H): H {
  return Object.assign(hook, { [POLICY]: policy })
}

/** A route-level onRequest hook admitting admins only (401/403 otherwise), before the route's params or body are looked at. */
export function adminHook(tokens: TokenService): Hook {
  return enforcing(ADMIN, function adminOnly(request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    try {
      authorize(ADMIN, callerOf(request, tokens))
      done()
    } catch (err) {
      done(err as Error)
    }
  })
}

/** The policy a route's onRequest hooks enforce: the admin hook's, or public. */
export function policyOfHooks(hooks: unknown): AuthPolicy {
  for (const hook of Array.isArray(hooks) ? hooks : [hooks]) {
    const policy = (hook as { [POLICY]?: AuthPolicy } | undefined)?.[POLICY]
    if (policy !== undefined) return policy
  }
  return 'public'
}
