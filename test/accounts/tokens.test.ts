// Token faults at the unit level (no network): every way a token can be wrong is refused with 401,
// every wrong role with 403, and production refuses a weak secret.
import { createSigner, type SignerOptions } from 'fast-jwt'
import { describe, expect, it } from 'vitest'
import { authorize, createTokenService, identify, type Principal } from '../../lib/auth.js'
import { ConfigError, loadConfig, parseConfig } from '../../lib/config.js'
import { FlowgateError } from '../../lib/errors.js'

const config = parseConfig({ jwtSecret: 'a'.repeat(40), jwtIssuer: 'flowgate', jwtAudience: 'flowgate-api', jwtClockSkewSec: 30 })
const tokens = createTokenService(config)
const admin: Principal = { sub: '00000000-0000-4000-8000-000000000001', role: 'admin', root: false, email: 'a@example.com' }
const root: Principal = { ...admin, root: true }
const customer: Principal = { sub: '00000000-0000-4000-8000-000000000002', role: 'customer', email: 'c@example.com' }

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
const now = () => Math.floor(Date.now() / 1000)
const claims = (extra: Record<string, unknown> = {}) => ({ ...admin, iss: 'flowgate', aud: 'flowgate-api', iat: now(), exp: now() + 600, ...extra })

function refused(token: string, code = 'UNAUTHORIZED'): FlowgateError {
  try {
    tokens.verify(token)
  } catch (err) {
    expect(err).toBeInstanceOf(FlowgateError)
    expect((err as FlowgateError).code).toBe(code)
    return err as FlowgateError
  }
  throw new Error('token was accepted')
}

const sign = (opts: Omit<Partial<SignerOptions>, 'key'>, payload: Record<string, unknown>) =>
  createSigner({ ...opts, key: config.jwtSecret })(payload)

describe('token service', () => {
  it('signs HS256 tokens with iss, aud, iat and exp, and verifies them back', () => {
    const { token, expiresIn } = tokens.sign(root)
    expect(expiresIn).toBe(config.jwtTtlSec)
    const [header, payload] = token.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()))
    expect(header).toMatchObject({ alg: 'HS256' })
    expect(payload).toMatchObject({ iss: 'flowgate', aud: 'flowgate-api', sub: root.sub, role: 'admin', root: true })
    expect(payload.exp - payload.iat).toBe(config.jwtTtlSec)
    expect(tokens.verify(token)).toEqual(root)
  })

  it('refuses alg none (unsigned) tokens', () => {
    refused(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`)
    refused(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}`)
  })

  it('refuses an algorithm outside the allow-list even with the right secret', () => {
    refused(sign({ algorithm: 'HS512', iss: 'flowgate', aud: 'flowgate-api', expiresIn: 60_000 }, { ...admin }))
  })

  it('refuses a token signed with another secret', () => {
    const other = createTokenService({ ...config, jwtSecret: 'b'.repeat(40) })
    refused(other.sign(admin).token)
  })

  it('refuses an expired token, but tolerates the configured clock skew', () => {
    const expired = sign({ algorithm: 'HS256', iss: 'flowgate', aud: 'flowgate-api', expiresIn: 60_000, clockTimestamp: Date.now() - 3_600_000 }, { ...admin })
    expect(refused(expired).message).toBe('Token expired')
    const justExpired = sign({ algorithm: 'HS256', iss: 'flowgate', aud: 'flowgate-api', expiresIn: 60_000, clockTimestamp: Date.now() - 70_000 }, { ...admin })
    expect(tokens.verify(justExpired).sub).toBe(admin.sub)
  })

  it('refuses a wrong audience or issuer', () => {
    refused(sign({ algorithm: 'HS256', iss: 'flowgate', aud: 'someone-else', expiresIn: 60_000 }, { ...admin }))
    refused(sign({ algorithm: 'HS256', iss: 'evil', aud: 'flowgate-api', expiresIn: 60_000 }, { ...admin }))
  })

  it('refuses tokens without exp or iat, or issued in the future', () => {
    refused(sign({ algorithm: 'HS256', iss: 'flowgate', aud: 'flowgate-api' }, { ...admin }))
    refused(sign({ algorithm: 'HS256', iss: 'flowgate', aud: 'flowgate-api', expiresIn: 60_000, noTimestamp: true }, { ...admin }))
    refused(sign({ algorithm: 'HS256', iss: 'flowgate', aud: 'flowgate-api', expiresIn: 60_000 }, { ...admin, iat: now() + 3600 }))
  })

  it('refuses a signed token whose claims are not a principal', () => {
    refused(sign({ algorithm: 'HS256', iss: 'flowgate', aud: 'flowgate-api', expiresIn: 60_000 }, { sub: 'x', role: 'superuser' }))
  })

  it('refuses garbage', () => {
    for (const t of ['', 'abc', 'a.b.c', `${b64({ alg: 'HS256' })}.${b64(claims())}.AAAA`]) refused(t)
  })
})

describe('authorize', () => {
  const bearer = (p: Principal) => `Bearer ${tokens.sign(p).token}`

  it('401 without a token or with a malformed header', () => {
    for (const h of [undefined, '', 'Basic abc', 'Bearer', `Bearer ${'x'.repeat(9000)}`]) {
      expect(() => authorize({ roles: ['admin'] }, identify(h, tokens))).toThrow(expect.objectContaining({ code: 'UNAUTHORIZED' }))
    }
  })

  it('403 for a customer token on an admin route', () => {
    expect(() => authorize({ roles: ['admin'] }, identify(bearer(customer), tokens))).toThrow(expect.objectContaining({ code: 'FORBIDDEN' }))
  })

  it('403 for a non-root admin on a root route; root passes', () => {
    expect(() => authorize({ roles: ['root'] }, identify(bearer(admin), tokens))).toThrow(expect.objectContaining({ code: 'FORBIDDEN' }))
    expect(authorize({ roles: ['root'] }, identify(bearer(root), tokens))).toEqual(root)
  })

  it('a bad token on a public flow is ignored, not trusted', () => {
    expect(authorize('public', identify('Bearer nope', tokens))).toBeUndefined()
  })
})

describe('production config', () => {
  it('refuses the default, an unset or a short JWT_SECRET', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(ConfigError)
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'flowgate-development-secret-do-not-use' })).toThrow(/JWT_SECRET/)
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short-secret' })).toThrow(/at least 32/)
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32) }).jwtSecret).toHaveLength(32)
  })
})
