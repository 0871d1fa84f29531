// The account flows on real PostgreSQL (a database of its own, DATABASE_URL path) and real NATS,
// called over the bus as the gateway calls them: every bad input and auth fault of issue 3.
import { createSigner } from 'fast-jwt'
import { count } from 'drizzle-orm'
import { admins, customers } from '../../db/schema.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { CLIENT_ID, CLIENT_SECRET, ROOT_EMAIL, ROOT_PASSWORD, startAccountsStack, type AccountsStack, type Envelope } from './stack.js'

let t: TestDatabase
let s: AccountsStack
let rootToken: string

beforeAll(async () => {
  t = await createTestDatabase('flows')
  s = await startAccountsStack({ databaseUrl: t.url })
  rootToken = await s.login('admin.login', ROOT_EMAIL, ROOT_PASSWORD)
})
afterAll(async () => {
  await s?.stop()
  await t?.drop()
})

const expectError = (r: Envelope, status: number, errorCode: string) => {
  expect(r).toMatchObject({ success: false, status, errorCode })
  expect(r.traceId).toMatch(/^[0-9a-f]{32}$/)
}
const fields = (r: Envelope) => (r.detailed ?? []).map((d) => d.field)

describe('admin login', () => {
  it('returns an admin token for the right password, with email normalised', async () => {
    const r = await s.call('admin.login', { email: `  ${ROOT_EMAIL.toUpperCase()} `, password: ROOT_PASSWORD })
    expect(r).toMatchObject({ success: true, status: 200, data: { expiresIn: s.config.jwtTtlSec } })
    const principal = s.tokens.verify((r.data as { token: string }).token)
    expect(principal).toMatchObject({ role: 'admin', root: true, email: ROOT_EMAIL })
  })

  it('wrong password and unknown email give the same 401, and both pay for a hash', async () => {
    const before = s.passwords.dummyCalls
    const wrong = await s.call('admin.login', { email: ROOT_EMAIL, password: 'not-the-password' })
    expect(s.passwords.dummyCalls).toBe(before)
    const unknown = await s.call('admin.login', { email: 'nobody@example.com', password: 'not-the-password' })
    expect(s.passwords.dummyCalls).toBe(before + 1)
    expectError(wrong, 401, 'UNAUTHORIZED')
    expectError(unknown, 401, 'UNAUTHORIZED')
    expect(wrong.message).toBe(unknown.message)
  })

  it('refuses a malformed email, an empty and a 10 kB password with 400', async () => {
    for (const email of ['not-an-email', 'a@b', '@example.com', 'a b@example.com', '', 'x'.repeat(400) + '@example.com', 42]) {
      const r = await s.call('admin.login', { email, password: 'whatever-123' })
      expectError(r, 400, 'VALIDATION_ERROR')
      expect(fields(r)).toContain('email')
    }
    for (const password of ['', 'p'.repeat(10 * 1024)]) {
      const r = await s.call('admin.login', { email: ROOT_EMAIL, password })
      expectError(r, 400, 'VALIDATION_ERROR')
      expect(fields(r)).toContain('password')
    }
  })

  it('refuses unknown fields and malformed JSON', async () => {
    expectError(await s.call('admin.login', { email: ROOT_EMAIL, password: ROOT_PASSWORD, root: true }), 400, 'VALIDATION_ERROR')
    expectError(await s.call('admin.login', '{"email":'), 400, 'VALIDATION_ERROR')
  })
})

describe('text the database cannot store', () => {
  it('answers a NUL in an email, a name or a client_id with a VALIDATION_ERROR naming the field', async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['admin.login', { email: 'ro\u0000ot@example.com', password: 'x' }, 'email'],
      ['customer.login', { email: 'a@exa\u0000mple.com', password: 'x' }, 'email'],
      ['customer.register', { email: 'nul\u0000@example.com', password: 'password-123' }, 'email'],
      ['customer.register', { email: 'nul@example.com', password: 'password-123', name: 'Ada\u0000' }, 'name'],
      ['auth.token', { client_id: `${CLIENT_ID}\u0000`, client_secret: CLIENT_SECRET }, 'client_id'],
    ]
    for (const [flow, input, field] of cases) {
      const r = await s.call(flow, input)
      expectError(r, 400, 'VALIDATION_ERROR')
      expect(r.detailed, flow).toContainEqual({ field, message: field === 'email' ? expect.any(String) : 'must not contain NUL (U+0000) characters' })
    }
  })

  it('maps the database refusing such text to VALIDATION_ERROR, not a 500', async () => {
    const { dbCall } = await import('../../db/errors.js')
    const { sql } = await import('drizzle-orm')
    const refused = await dbCall(() => s.database.db.select({ n: count() }).from(customers).where(sql`${customers.email} = ${'a\u0000b'}`)).catch((e: unknown) => e)
    expect(refused).toMatchObject({ code: 'VALIDATION_ERROR', status: 400 })
  })
})

describe('admin list', () => {
  it('pages admins with a counted total and never returns a password hash', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await s.call('admin.create', { email: `list-${i}@example.com`, password: 'password-123' }, { token: rootToken })
      expect(r.status).toBe(201)
    }
    const all = await s.call('admin.list', {}, { token: rootToken })
    expect(all).toMatchObject({ success: true, data: { total: 4, page: 1, limit: 20 } })
    const page2 = await s.call('admin.list', { page: 2, limit: 2 }, { token: rootToken })
    const data = page2.data as { items: Array<Record<string, unknown>>; total: number }
    expect(data.total).toBe(4)
    expect(data.items.map((a) => a.email)).toEqual(['list-1@example.com', 'list-2@example.com'])
    expect(Object.keys(data.items[0]!).sort()).toEqual(['createdAt', 'createdBy', 'email', 'id', 'root'])
    const text = JSON.stringify(all)
    expect(text).not.toMatch(/scrypt|password/i)
  })

  it('refuses page=-1, limit=1000000, page=abc, page=0 and extra fields with 400', async () => {
    for (const input of [{ page: -1 }, { limit: 1_000_000 }, { page: 'abc' }, { page: 0 }, { limit: 0 }, { page: 1.5 }, { page: 1, sort: 'email' }]) {
      const r = await s.call('admin.list', input, { token: rootToken })
      expectError(r, 400, 'VALIDATION_ERROR')
    }
  })
})

describe('tokens on the bus (the flow verifies them itself)', () => {
  const secret = () => s.config.jwtSecret
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const now = () => Math.floor(Date.now() / 1000)

  it('a forged identity without a valid token is refused on api.v1.admin.list', async () => {
    const forged = { sub: '00000000-0000-4000-8000-000000000000', role: 'admin', root: true }
    // No Authorization header, identity in the body and in made-up headers: refused before any data is read.
    // An identity in the body is refused too: the worker checks the token before it reads the input.
    expectError(await s.call('admin.list', { user: forged }), 401, 'UNAUTHORIZED')
    expectError(await s.call('admin.list', {}, { extraHeaders: { 'Flowgate-User': JSON.stringify(forged), 'X-User-Role': 'admin' } }), 401, 'UNAUTHORIZED')
    expectError(await s.call('admin.list', {}, { header: `Bearer ${b64({ alg: 'none' })}.${b64({ ...forged, iss: 'flowgate', aud: 'flowgate-api', iat: now(), exp: now() + 60 })}.` }), 401, 'UNAUTHORIZED')
  })

  it('refuses a token signed with another secret, an expired one and one for another audience', async () => {
    const other = createTokenService({ ...s.config, jwtSecret: 'another-secret-another-secret-0123' })
    const principal = { sub: '00000000-0000-4000-8000-000000000000', role: 'admin' as const, root: true }
    expectError(await s.call('admin.list', {}, { token: other.sign(principal).token }), 401, 'UNAUTHORIZED')
    const expired = createSigner({ key: secret(), algorithm: 'HS256', iss: s.config.jwtIssuer, aud: s.config.jwtAudience, expiresIn: 60_000, clockTimestamp: Date.now() - 7_200_000 })(principal)
    expectError(await s.call('admin.list', {}, { token: expired }), 401, 'UNAUTHORIZED')
    const wrongAud = createTokenService({ ...s.config, jwtAudience: 'some-other-api' }).sign(principal).token
    expectError(await s.call('admin.list', {}, { token: wrongAud }), 401, 'UNAUTHORIZED')
  })

  it('a customer token on an admin route is 403', async () => {
    await s.call('customer.register', { email: 'shopper@example.com', password: 'shopper-pass-1' })
    const customerToken = await s.login('customer.login', 'shopper@example.com', 'shopper-pass-1')
    expectError(await s.call('admin.list', {}, { token: customerToken }), 403, 'FORBIDDEN')
    expectError(await s.call('admin.create', { email: 'x@example.com', password: 'password-123' }, { token: customerToken }), 403, 'FORBIDDEN')
  })
})

describe('admin create', () => {
  it('root only: a non-root admin gets 403; root gets 201 {id} with created_by set', async () => {
    const created = await s.call('admin.create', { email: 'Plain.Admin@Example.com', password: 'plain-pass-123' }, { token: rootToken })
    expect(created).toMatchObject({ success: true, status: 201 })
    const id = (created.data as { id: string }).id
    const plainToken = await s.login('admin.login', 'plain.admin@example.com', 'plain-pass-123')
    expect(s.tokens.verify(plainToken).root).toBe(false)
    expectError(await s.call('admin.create', { email: 'other@example.com', password: 'password-123' }, { token: plainToken }), 403, 'FORBIDDEN')
    const list = await s.call('admin.list', { limit: 100 }, { token: plainToken })
    const row = (list.data as { items: Array<{ id: string; email: string; createdBy: string | null }> }).items.find((a) => a.id === id)
    expect(row).toMatchObject({ email: 'plain.admin@example.com', createdBy: s.tokens.verify(rootToken).sub })
  })

  it('the same email in another case is 409 CONFLICT', async () => {
    const r = await s.call('admin.create', { email: 'PLAIN.ADMIN@example.COM', password: 'password-123' }, { token: rootToken })
    expectError(r, 409, 'CONFLICT')
  })

  it('refuses a short and a 10 kB password', async () => {
    for (const password of ['', 'short', 'p'.repeat(10 * 1024)]) {
      expectError(await s.call('admin.create', { email: 'pw@example.com', password }, { token: rootToken }), 400, 'VALIDATION_ERROR')
    }
  })
})

describe('customers', () => {
  it('register → login → me', async () => {
    const reg = await s.call('customer.register', { email: ' Ada@Example.com', password: 'ada-password-1', name: 'Ada' })
    expect(reg).toMatchObject({ success: true, status: 201, data: { email: 'ada@example.com' } })
    const token = await s.login('customer.login', 'ADA@example.com', 'ada-password-1')
    const me = await s.call('customer.me', {}, { token })
    expect(me).toMatchObject({ success: true, data: { id: (reg.data as { id: string }).id, email: 'ada@example.com', name: 'Ada' } })
    expect(JSON.stringify(me)).not.toMatch(/scrypt|password/i)
  })

  it('login faults: wrong password, unknown email, malformed email, empty and 10 kB passwords', async () => {
    expectError(await s.call('customer.login', { email: 'ada@example.com', password: 'wrong-password' }), 401, 'UNAUTHORIZED')
    expectError(await s.call('customer.login', { email: 'nobody@example.com', password: 'wrong-password' }), 401, 'UNAUTHORIZED')
    expectError(await s.call('customer.login', { email: 'ada.example.com', password: 'ada-password-1' }), 400, 'VALIDATION_ERROR')
    expectError(await s.call('customer.login', { email: 'ada@example.com', password: '' }), 400, 'VALIDATION_ERROR')
    expectError(await s.call('customer.login', { email: 'ada@example.com', password: 'p'.repeat(10 * 1024) }), 400, 'VALIDATION_ERROR')
    expectError(await s.call('customer.register', { email: 'new@example.com', password: '' }), 400, 'VALIDATION_ERROR')
    expectError(await s.call('customer.register', { email: 'new@example.com', password: 'p'.repeat(10 * 1024) }), 400, 'VALIDATION_ERROR')
    expectError(await s.call('customer.register', { email: 'not an email', password: 'password-123' }), 400, 'VALIDATION_ERROR')
  })

  it('me needs a customer token', async () => {
    expectError(await s.call('customer.me', {}), 401, 'UNAUTHORIZED')
    expectError(await s.call('customer.me', {}, { token: rootToken }), 403, 'FORBIDDEN')
  })

  it('concurrent registrations of one email: exactly one 201, the others 409, never 500', async () => {
    const emails = ['race@example.com', 'RACE@example.com', ' Race@Example.com', 'race@EXAMPLE.com', 'race@example.com']
    const results = await Promise.all(emails.map((email) => s.call('customer.register', { email, password: 'race-password-1' })))
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409])
    for (const r of results.filter((x) => x.status === 409)) expect(r.errorCode).toBe('CONFLICT')
  })
})

describe('SQL metacharacters in every string field', () => {
  const nasty = [`o'brien";--@example.com`, `a'or'1'='1@example.com`, `x\\\\';drop_table_customers;--@example.com`]

  it('are data, never SQL: stored and matched verbatim', async () => {
    for (const email of nasty) {
      const reg = await s.call('customer.register', { email, password: `p'; DROP TABLE customers; --`, name: `Robert'); DROP TABLE customers;--` })
      expect(reg.status).toBe(201)
      const token = await s.login('customer.login', email, `p'; DROP TABLE customers; --`)
      const me = await s.call('customer.me', {}, { token })
      expect(me.data).toMatchObject({ email: email.toLowerCase(), name: `Robert'); DROP TABLE customers;--` })
    }
    for (const email of nasty) {
      expectError(await s.call('admin.login', { email, password: `' OR '1'='1` }), 401, 'UNAUTHORIZED')
      expectError(await s.call('customer.login', { email: nasty[0], password: `' OR 1=1 --` }), 401, 'UNAUTHORIZED')
    }
    const created = await s.call('admin.create', { email: nasty[0], password: `'); DELETE FROM admins; --` }, { token: rootToken })
    expect(created.status).toBe(201)
    expectError(await s.call('auth.token', { client_id: `' OR '1'='1`, client_secret: `' OR '1'='1` }), 401, 'UNAUTHORIZED')
    expectError(await s.call('auth.token', { client_id: CLIENT_ID, client_secret: `x' OR 'x'='x` }), 401, 'UNAUTHORIZED')
    // The tables are all still there and hold what was written.
    const [{ c }] = (await t.handle.db.select({ c: count() }).from(customers)) as [{ c: number }]
    expect(c).toBeGreaterThanOrEqual(nasty.length)
    expect((await t.handle.db.select({ c: count() }).from(admins))[0]!.c).toBeGreaterThan(1)
  })
})

describe('client credentials (POST /auth/token)', () => {
  it('the seeded client gets a Bearer token with role client; wrong or unknown credentials get 401', async () => {
    const r = await s.call('auth.token', { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, grant_type: 'client_credentials' })
    expect(r).toMatchObject({ success: true, data: { token_type: 'Bearer', expires_in: s.config.jwtTtlSec } })
    const token = (r.data as { access_token: string }).access_token
    expect(s.tokens.verify(token)).toMatchObject({ sub: CLIENT_ID, role: 'client', scopes: ['api'] })
    expectError(await s.call('admin.list', {}, { token }), 403, 'FORBIDDEN')
    expectError(await s.call('auth.token', { client_id: CLIENT_ID, client_secret: 'wrong-secret' }), 401, 'UNAUTHORIZED')
    expectError(await s.call('auth.token', { client_id: 'nobody', client_secret: CLIENT_SECRET }), 401, 'UNAUTHORIZED')
    expectError(await s.call('auth.token', { client_id: CLIENT_ID, client_secret: '' }), 400, 'VALIDATION_ERROR')
    expectError(await s.call('auth.token', { client_id: CLIENT_ID, client_secret: 's'.repeat(10 * 1024) }), 400, 'VALIDATION_ERROR')
  })
})

describe('healthcheck', () => {
  it('reports the database', async () => {
    const r = await s.call('healthcheck', {})
    expect(r.data).toMatchObject({ status: 'ok', checks: { database: { status: 'up' }, nats: { status: 'up' } } })
  })
})
