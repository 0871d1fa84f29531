// The account routes over HTTP through the real gateway (inject), with the flows on a real worker:
// edge validation and coercion of query strings, 401/403 at the edge, the root-mounted POST /auth/token.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../lib/logger.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { startGateway, testConfig, waitForRoute, type TestGateway } from '../harness/stack.js'
import { CLIENT_ID, CLIENT_SECRET, ROOT_EMAIL, ROOT_PASSWORD, startAccountsStack, type AccountsStack } from './stack.js'

let t: TestDatabase
let s: AccountsStack
let gw: TestGateway
let rootToken: string

beforeAll(async () => {
  t = await createTestDatabase('http')
  s = await startAccountsStack({ databaseUrl: t.url })
  gw = await startGateway(testConfig(s.nats.url, { logLevel: 'silent', jwtSecret: s.config.jwtSecret }), createLogger({ logLevel: 'silent' }))
  await waitForRoute(gw.gateway, 'POST', '/auth/token')
  await waitForRoute(gw.gateway, 'GET', '/api/v1/admin/list')
  rootToken = await s.login('admin.login', ROOT_EMAIL, ROOT_PASSWORD)
})
afterAll(async () => {
  await gw?.stop()
  await s?.stop()
  await t?.drop()
})

const inject = (opts: { method: 'GET' | 'POST'; url: string; token?: string; payload?: unknown }) =>
  gw.gateway.app.inject({
    method: opts.method,
    url: opts.url,
    headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
    ...(opts.payload === undefined ? {} : { payload: opts.payload as Record<string, unknown> }),
  })

describe('over HTTP', () => {
  it('POST /api/v1/admin/login → {token, expiresIn}; bad credentials 401; bad email 400', async () => {
    const ok = await inject({ method: 'POST', url: '/api/v1/admin/login', payload: { email: ROOT_EMAIL, password: ROOT_PASSWORD } })
    expect(ok.statusCode).toBe(200)
    expect(ok.json()).toMatchObject({ success: true, status: 200, data: { expiresIn: s.config.jwtTtlSec } })
    expect(ok.headers['x-trace-id']).toMatch(/^[0-9a-f]{32}$/)
    const wrong = await inject({ method: 'POST', url: '/api/v1/admin/login', payload: { email: ROOT_EMAIL, password: 'nope-nope' } })
    expect(wrong.statusCode).toBe(401)
    expect(wrong.json()).toMatchObject({ errorCode: 'UNAUTHORIZED', message: 'Invalid email or password' })
    const bad = await inject({ method: 'POST', url: '/api/v1/admin/login', payload: { email: 'nope', password: 'x' } })
    expect(bad.statusCode).toBe(400)
    expect(bad.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR' })
  })

  it('GET /api/v1/admin/list: query strings coerced and bounded at the edge', async () => {
    const ok = await inject({ method: 'GET', url: '/api/v1/admin/list?page=1&limit=5', token: rootToken })
    expect(ok.statusCode).toBe(200)
    expect(ok.json()).toMatchObject({ data: { total: 1, page: 1, limit: 5 } })
    for (const q of ['page=-1', 'limit=1000000', 'page=abc', 'page=0', 'limit=', 'page=1e9']) {
      const r = await inject({ method: 'GET', url: `/api/v1/admin/list?${q}`, token: rootToken })
      expect(r.statusCode, q).toBe(400)
      expect(r.json()).toMatchObject({ success: false, errorCode: 'VALIDATION_ERROR' })
    }
  })

  it('401 without or with a bad token, 403 for a customer or a non-root admin', async () => {
    expect((await inject({ method: 'GET', url: '/api/v1/admin/list' })).statusCode).toBe(401)
    expect((await inject({ method: 'GET', url: '/api/v1/admin/list', token: 'not.a.token' })).statusCode).toBe(401)
    await inject({ method: 'POST', url: '/api/v1/customer/register', payload: { email: 'h@example.com', password: 'password-123' } })
    const customer = await s.login('customer.login', 'h@example.com', 'password-123')
    const forbidden = await inject({ method: 'GET', url: '/api/v1/admin/list', token: customer })
    expect(forbidden.statusCode).toBe(403)
    expect(forbidden.json()).toMatchObject({ errorCode: 'FORBIDDEN' })
    const created = await inject({ method: 'POST', url: '/api/v1/admin/create', token: rootToken, payload: { email: 'plain@example.com', password: 'password-123' } })
    expect(created.statusCode).toBe(201)
    expect(created.json()).toMatchObject({ success: true, status: 201, data: { id: expect.any(String) } })
    const plain = await s.login('admin.login', 'plain@example.com', 'password-123')
    const refused = await inject({ method: 'POST', url: '/api/v1/admin/create', token: plain, payload: { email: 'x@example.com', password: 'password-123' } })
    expect(refused.statusCode).toBe(403)
    const me = await inject({ method: 'GET', url: '/api/v1/customer/me', token: customer })
    expect(me.json()).toMatchObject({ data: { email: 'h@example.com' } })
  })

  it('a NUL byte in email, name or client_id is a 400 VALIDATION_ERROR at the edge, never a 500', async () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['/api/v1/admin/login', { email: 'a\u0000@example.com', password: 'x' }, 'email'],
      ['/api/v1/customer/login', { email: 'a\u0000@example.com', password: 'x' }, 'email'],
      ['/api/v1/customer/register', { email: 'a\u0000@example.com', password: 'password-123' }, 'email'],
      ['/api/v1/customer/register', { email: 'a@example.com', password: 'password-123', name: '\u0000' }, 'name'],
      ['/auth/token', { client_id: '\u0000', client_secret: 'x' }, 'client_id'],
    ]
    for (const [url, payload, field] of cases) {
      const r = await inject({ method: 'POST', url, payload })
      expect(r.statusCode, url).toBe(400)
      expect(r.json()).toMatchObject({ success: false, errorCode: 'VALIDATION_ERROR', detailed: [expect.objectContaining({ field })] })
    }
  })

  it('POST /auth/token (client credentials) at the root', async () => {
    const r = await inject({ method: 'POST', url: '/auth/token', payload: { client_id: CLIENT_ID, client_secret: CLIENT_SECRET } })
    expect(r.statusCode).toBe(200)
    expect(r.json()).toMatchObject({ data: { token_type: 'Bearer', expires_in: s.config.jwtTtlSec, access_token: expect.any(String) } })
    const bad = await inject({ method: 'POST', url: '/auth/token', payload: { client_id: CLIENT_ID, client_secret: 'wrong' } })
    expect(bad.statusCode).toBe(401)
  })
})
