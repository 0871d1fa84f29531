// Tokens and auth policies, shared by the gateway (edge check) and the flow worker (second check:
// the bus is untrusted, so a flow never takes an identity it cannot verify itself).
import { createSigner, createVerifier, TokenError } from 'fast-jwt'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Config } from './config.js'
import { errors, FlowgateError } from './errors.js'

export const Role = Type.Union([Type.Literal('admin'), Type.Literal('customer'), Type.Literal('client')])
export type Role = Static<typeof Role>

/** The verified caller, as flows see it in `ctx.user`. */
export const Principal = Type.Object({
  sub: Type.String({ minLength: 1, maxLength: 128 }),
  role: Role,
  root: Type.Optional(Type.Boolean()),
  email: Type.Optional(Type.String({ maxLength: 320 })),
  scopes: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 })),
})
export type Principal = Static<typeof Principal>
const PrincipalCheck = TypeCompiler.Compile(Principal)

/**
 * Who may call a flow: anyone, any verified caller, or callers with one of the roles.
 * `root` is an admin whose token carries `root: true`.
 */
export const AuthPolicy = Type.Union([
  Type.Literal('public'),
  Type.Literal('authenticated'),
  Type.Object({ roles: Type.Array(Type.Union([Role, Type.Literal('root')]), { minItems: 1 }) }),
])
export type AuthPolicy = Static<typeof AuthPolicy>
export const AuthPolicyCheck = TypeCompiler.Compile(AuthPolicy)

// One algorithm, fixed here: the token's own `alg` header never chooses it.
const ALGORITHMS = ['HS256'] as const

export interface TokenService {
  sign(principal: Principal, ttlSec?: number): { token: string; expiresIn: number }
  /** The principal of a valid token; UNAUTHORIZED otherwise (never says why in detail). */
  verify(token: string): Principal
}

export function createTokenService(
  config: Pick<Config, 'jwtSecret' | 'jwtIssuer' | 'jwtAudience' | 'jwtTtlSec' | 'jwtClockSkewSec'>,
): TokenService {
  const signerFor = (ttlSec: number) =>
    createSigner({
      key: config.jwtSecret,
      algorithm: ALGORITHMS[0],
      iss: config.jwtIssuer,
      aud: config.jwtAudience,
      expiresIn: ttlSec * 1000,
    })
  const signer = signerFor(config.jwtTtlSec)
  const skewMs = config.jwtClockSkewSec * 1000
  const verifier = createVerifier({
    key: config.jwtSecret,
    algorithms: [...ALGORITHMS],
    allowedIss: config.jwtIssuer,
    allowedAud: config.jwtAudience,
    clockTolerance: skewMs,
    requiredClaims: ['exp', 'iat', 'sub', 'iss', 'aud'],
    // Verified tokens are cached (bounded, and never past their exp) so the hot path pays one HMAC per token.
    cache: 10_000,
    cacheTTL: 60_000,
  })
  return {
    sign(principal, ttlSec = config.jwtTtlSec) {
      const sign = ttlSec === config.jwtTtlSec ? signer : signerFor(ttlSec)
      return { token: sign({ ...principal }), expiresIn: ttlSec }
    },
    verify(token) {
      let claims: unknown
      try {
        claims = verifier(token)
      } catch (err) {
        if (err instanceof TokenError) throw errors.unauthorized(err.code === 'FAST_JWT_EXPIRED' ? 'Token expired' : 'Invalid token')
        throw err
      }
      const c = claims as Record<string, unknown>
      // fast-jwt checks exp and nbf against the clock, not iat: a token issued in the future is refused here.
      if (typeof c.iat !== 'number' || typeof c.exp !== 'number' || c.iat * 1000 > Date.now() + skewMs || c.exp <= c.iat) {
        throw errors.unauthorized('Invalid token')
      }
      const principal = { sub: c.sub, role: c.role, root: c.root, email: c.email, scopes: c.scopes }
      for (const k of Object.keys(principal) as Array<keyof typeof principal>) if (principal[k] === undefined) delete principal[k]
      if (!PrincipalCheck.Check(principal)) throw errors.unauthorized('Invalid token')
      return principal
    },
  }
}

/** The bearer token of an Authorization header value, or undefined. */
export function bearerToken(header: string | undefined | null): string | undefined {
  if (!header || header.length > 8192) return undefined
  const m = /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(header)
  return m?.[1]
}

/**
 * Who is calling, worked out once per request: the bearer token, and the principal it proves or the
 * error that refuses it. A policy check and a rate-limit key both read this instead of verifying again.
 */
export interface Caller {
  readonly token?: string
  readonly principal?: Principal
  readonly error?: FlowgateError
}

const ANONYMOUS: Caller = Object.freeze({})

/** Verifies the Authorization header's bearer token, if any; never throws for a bad token. */
export function identify(authorization: string | undefined | null, tokens: TokenService): Caller {
  const token = bearerToken(authorization)
  if (token === undefined) return ANONYMOUS
  try {
    return { token, principal: tokens.verify(token) }
  } catch (err) {
    if (err instanceof FlowgateError) return { token, error: err }
    throw err
  }
}

/** Applies a policy: returns the principal (or undefined for an anonymous call to a public flow), or throws 401/403. */
export function authorize(policy: AuthPolicy, caller: Caller): Principal | undefined {
  // A public flow still learns who calls it, but a bad token on a public flow is not an error.
  if (policy === 'public') return caller.principal
  if (caller.token === undefined) throw errors.unauthorized()
  if (caller.principal === undefined) throw caller.error ?? errors.unauthorized('Invalid token')
  const principal = caller.principal
  if (policy === 'authenticated') return principal
  const allowed = policy.roles.some((r) => (r === 'root' ? principal.role === 'admin' && principal.root === true : r === principal.role))
  if (!allowed) throw errors.forbidden()
  return principal
}
