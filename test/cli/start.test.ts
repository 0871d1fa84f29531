// `npm start` as a new user runs it (scripts/start.mjs, what npm runs: the build is current, so it
// goes straight to `flowgate start` in the same process), then used as a seed client and as an
// attacker would: every part in one process, its own nats-server on a free port, the embedded
// database, the development defaults. No 500, no non-envelope error, no self-lockout, the original
// API contract kept; stdout only JSON log lines, the human lines on stderr; Ctrl-C stops it.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../harness/redis.js'
import { CLI, freePort, tempDir, waitFor } from '../harness/process.js'

let redis: RedisServer
let base: string
let stopped: Promise<number | null>
let child: ReturnType<typeof spawn>
const out = { stdout: '', stderr: '' }

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  redis = await startRedis()
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  const env = {
    PATH: process.env.PATH ?? '',
    DATA_DIR: tempDir('start'),
    PORT: String(port),
    LOCAL_NATS_PORT: '0',
    CACHE_PROXY_PORT: String(await freePort()),
    REDIS_URL: redis.url,
    // Room for this file's own calls from 127.0.0.1 before the loop below meets the limit.
    RATE_LIMIT_CAPACITY: '40',
  }
  child = spawn(process.execPath, ['scripts/start.mjs'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.on('data', (b: Buffer) => (out.stdout += b.toString()))
  child.stderr!.on('data', (b: Buffer) => (out.stderr += b.toString()))
  stopped = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  await waitFor(async () => (await fetch(`${base}/ready`).catch(() => undefined))?.status === 200, 60_000).catch(() => {
    throw new Error(`not ready:\n${out.stderr}\n${out.stdout.slice(-3000)}`)
  })
}, 90_000)

afterAll(async () => {
  if (child?.exitCode === null) child.kill('SIGKILL')
  await redis?.stop()
})

type Json = Record<string, unknown> & { data?: Record<string, unknown> }
async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    ;(init.headers as Record<string, string>)['content-type'] ??= 'application/json'
  }
  const res = await fetch(`${base}${path}`, init)
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: (text.startsWith('{') ? JSON.parse(text) : {}) as Json, text }
}

/** An error answer: the envelope, with its trace id in the body and the header. */
function expectEnvelope(r: Awaited<ReturnType<typeof call>>, status: number, errorCode: string) {
  expect(r.status).toBe(status)
  expect(r.body).toMatchObject({ success: false, status, errorCode, traceId: expect.stringMatching(/^[0-9a-f]{32}$/) })
  expect(r.headers.get('x-trace-id')).toBe(r.body.traceId)
}

describe('flowgate start, used', () => {
  it('keeps the seed client\'s contract', async () => {
    const password = /root admin admin@flowgate\.local created with password (\S+)/.exec(out.stderr)?.[1]
    const secret = /API client flowgate-dev created with secret (\S+)/.exec(out.stderr)?.[1]
    expect(password && secret).toBeTruthy()
    const reg = await call('POST', '/api/v1/customer/register', { email: 'ada@example.com', password: 'password-123', firstName: 'Ada', lastName: 'Lovelace' })
    expect(reg.status).toBe(201)
    expect(reg.body.data!.id).toEqual(expect.any(String))
    const login = await call('POST', '/api/v1/admin/login', { email: 'admin@flowgate.local', password })
    expect(login.status).toBe(200)
    const admin = { authorization: `Bearer ${String(login.body.data!.token)}` }
    expect((await call('POST', '/api/v1/admin/create-admin', { email: 'ops@example.com', password: 'password-123' }, admin)).status).toBe(201)
    const token = await call('POST', '/auth/token', `grant_type=client_credentials&client_id=flowgate-dev&client_secret=${encodeURIComponent(secret!)}`, { 'content-type': 'application/x-www-form-urlencoded' })
    expect(token.status).toBe(200)
    expect(token.body.data).toMatchObject({ token_type: 'Bearer' })
    const docs = (await call('GET', '/docs/json')).body as { paths: Record<string, unknown> }
    for (const path of ['/health', '/ready', '/metrics', '/admin/blocks', '/admin/blocks/{address}', '/api/v1/customer/register', '/api/v1/admin/create-admin', '/auth/token']) {
      expect(docs.paths[path], path).toBeDefined()
    }
  })

  it('answers every bad input with the envelope and a precise code, never a 500', async () => {
    const login = await call('POST', '/api/v1/admin/login', { email: 'a\u0000@example.com', password: 'x' })
    expectEnvelope(login, 400, 'VALIDATION_ERROR')
    expectEnvelope(await call('POST', '/auth/token', { client_id: '\u0000', client_secret: 'x' }), 400, 'VALIDATION_ERROR')
    for (const name of ['constructor', '__proto__', 'toString']) {
      expectEnvelope(await call('POST', '/api/v1/orders/quote', { items: [{ sku: name, quantity: 1 }] }), 404, 'NOT_FOUND')
      expectEnvelope(await call('POST', '/api/v1/orders/quote', { items: [{ sku: 'kettle', quantity: 1 }], coupon: name }), 400, 'VALIDATION_ERROR')
    }
    expectEnvelope(await call('GET', '/api/v1/%ff'), 400, 'VALIDATION_ERROR')
    expectEnvelope(await call('DELETE', '/admin/blocks/%25'), 401, 'UNAUTHORIZED')
    const wrongMethod = await call('POST', '/health')
    expectEnvelope(wrongMethod, 405, 'METHOD_NOT_ALLOWED')
    expect(wrongMethod.headers.get('allow')).toBe('GET, HEAD')
  })

  it('a 60-request loop from localhost is limited, never locked out', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 60; i++) statuses.push((await call('GET', '/api/v1/healthcheck')).status)
    expect(statuses).toContain(429)
    // what the subscriber would have blocked within a second or two, had loopback not been exempt
    await new Promise((r) => setTimeout(r, 2000))
    for (const path of ['/health', '/ready', '/metrics', '/docs']) expect((await call('GET', path)).status, path).not.toBe(403)
    expect(out.stdout).not.toContain('"msg":"address blocked"')
  })

  it('writes only JSON log lines on stdout, the human lines on stderr, and stops on Ctrl-C', async () => {
    const lines = out.stdout.split('\n').filter(Boolean)
    expect(lines.length).toBeGreaterThan(10)
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow()
    expect(out.stderr).toContain('Flowgate is up')
    expect(out.stderr).not.toMatch(/^\{"level"/m)
    child.kill('SIGINT')
    expect(await Promise.race([stopped, new Promise((r) => setTimeout(() => r('hung'), 20_000))])).toBe(0)
  })
})
