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

  it('keeps the original nats-flow-gateway contract: register {email, password, firstName, lastName} → 201 {id}; /admin/create-admin', async () => {
    const reg = await inject({ method: 'POST', url: '/api/v1/customer/register', payload: { email: 'seed@example.com', password: 'password-123', firstName: 'Ada', lastName: 'Lovelace' } })
    expect(reg.statusCode).toBe(201)
    expect(reg.json()).toMatchObject({ success: true, status: 201, data: { id: expect.stringMatching(/^[0-9a-f-]{36}$/) } })
    const token = await s.login('customer.login', 'seed@example.com', 'password-123')
    const me = await inject({ method: 'GET', url: '/api/v1/customer/me', token })
    expect(me.json().data).toMatchObject({ id: reg.json().data.id, firstName: 'Ada', lastName: 'Lovelace', name: 'Ada Lovelace' })
    const missing = await inject({ method: 'POST', url: '/api/v1/customer/register', payload: { email: 'seed2@example.com', password: 'password-123', firstName: '' } })
    expect(missing.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR', detailed: [expect.objectContaining({ field: 'firstName' })] })

    const created = await inject({ method: 'POST', url: '/api/v1/admin/create-admin', token: rootToken, payload: { email: 'seeded-admin@example.com', password: 'password-123' } })
    expect(created.statusCode).toBe(201)
    expect(created.json()).toMatchObject({ success: true, status: 201, data: { id: expect.any(String) } })
    expect(await s.login('admin.login', 'seeded-admin@example.com', 'password-123')).toEqual(expect.any(String))
    expect((await inject({ method: 'POST', url: '/api/v1/admin/create-admin', payload: { email: 'x@example.com', password: 'password-123' } })).statusCode).toBe(401)
    const again = await inject({ method: 'POST', url: '/api/v1/admin/create-admin', token: rootToken, payload: { email: 'seeded-admin@example.com', password: 'password-123' } })
    expect(again.json()).toMatchObject({ errorCode: 'CONFLICT' })
  })

  it('POST /auth/token also takes application/x-www-form-urlencoded (RFC 6749 §4.4); other flows stay JSON only', async () => {
    const form = (url: string, body: string) =>
      gw.gateway.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: body })
    const secret = encodeURIComponent(CLIENT_SECRET)
    const ok = await form('/auth/token', `grant_type=client_credentials&client_id=${CLIENT_ID}&client_secret=${secret}`)
    expect(ok.statusCode).toBe(200)
    expect(ok.json()).toMatchObject({ success: true, data: { token_type: 'Bearer', access_token: expect.any(String) } })
    expect((await form('/auth/token', `client_id=${CLIENT_ID}&client_secret=wrong`)).statusCode).toBe(401)
    const repeated = await form('/auth/token', `client_id=${CLIENT_ID}&client_id=other&client_secret=${secret}`)
    expect(repeated.json()).toMatchObject({ status: 400, errorCode: 'VALIDATION_ERROR', detailed: [{ field: 'client_id', message: 'must not be repeated' }] })
    const grant = await form('/auth/token', `grant_type=password&client_id=${CLIENT_ID}&client_secret=${secret}`)
    expect(grant.json()).toMatchObject({ status: 400, errorCode: 'VALIDATION_ERROR', detailed: [expect.objectContaining({ field: 'grant_type' })] })
    const nul = await form('/auth/token', `client_id=a%00b&client_secret=${secret}`)
    expect(nul.json()).toMatchObject({ status: 400, errorCode: 'VALIDATION_ERROR', detailed: [expect.objectContaining({ field: 'client_id' })] })
    const login = await form('/api/v1/admin/login', `email=${encodeURIComponent(ROOT_EMAIL)}&password=${ROOT_PASSWORD}`)
    expect(login.statusCode).toBe(415)
    expect(login.json()).toMatchObject({ errorCode: 'UNSUPPORTED_MEDIA_TYPE' })
  })

  it('POST /auth/token (client credentials) at the root', async () => {
    const r = await inject({ method: 'POST', url: '/auth/token', payload: { client_id: CLIENT_ID, client_secret: CLIENT_SECRET } })
    expect(r.statusCode).toBe(200)
    expect(r.json()).toMatchObject({ data: { token_type: 'Bearer', expires_in: s.config.jwtTtlSec, access_token: expect.any(String) } })
    const bad = await inject({ method: 'POST', url: '/auth/token', payload: { client_id: CLIENT_ID, client_secret: 'wrong' } })
    expect(bad.statusCode).toBe(401)
  })
})
