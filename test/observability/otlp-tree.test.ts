// One request's trace, exported over OTLP/HTTP by the built CLI's processes (a gateway and a flow
// worker, each its own process, on real NATS, PostgreSQL and Redis) to a real receiver, forms one
// tree: gateway SERVER → NATS CLIENT → flow run SERVER → INTERNAL steps → the pg and ioredis spans
// those steps made. The pg and ioredis spans prove that the CLI registered the instrumentations
// before the worker loaded those libraries.
import { existsSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KIND, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../harness/otlp.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { CLI, freePort, tempDir, runCli, waitFor, type CliProcess } from '../harness/process.js'
import { startRedis, type RedisServer } from '../harness/redis.js'

const EMAIL = 'root@otlp.test'
const PASSWORD = 'otlp-tree-password-1'

let nats: NatsServer
let redis: RedisServer
let db: TestDatabase
let receiver: OtlpReceiver
let flows: CliProcess
let gateway: CliProcess
let base = ''

const stop = async (p: CliProcess | undefined) => {
  if (!p || p.child.exitCode !== null) return
  p.child.kill('SIGTERM')
  await Promise.race([p.exit, new Promise((r) => setTimeout(r, 8000))])
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  ;[nats, redis, db, receiver] = await Promise.all([startNats(), startRedis(), createTestDatabase('otlp'), startOtlpReceiver()])
  const port = await freePort()
  const common = {
    NATS_URL: nats.url,
    LOG_LEVEL: 'warn',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,team=edge%20ops',
    // The worker runs in development (it seeds the admin) and the gateway in test: one secret for both,
    // or development would generate its own in its data directory.
    JWT_SECRET: 'otlp-tree-test-secret-of-at-least-32-chars',
    DATA_DIR: tempDir('otlp'),
  }
  flows = runCli(['flows'], {
    ...common,
    NODE_ENV: 'development',
    DATABASE_URL: db.url,
    CACHE_URL: redis.url,
    ADMIN_EMAIL: EMAIL,
    ADMIN_PASSWORD: PASSWORD,
  })
  gateway = runCli(['gateway'], { ...common, NODE_ENV: 'test', PORT: String(port), HOST: '127.0.0.1', DISCOVERY_INTERVAL_MS: '200', EVENTS_ENABLED: 'false', RATE_LIMIT_CAPACITY: '1000' })
  base = `http://127.0.0.1:${port}`
  await waitFor(() => flows.output().includes('flow worker:'), 30_000).catch(() => {
    throw new Error(`worker did not start:\n${flows.output()}`)
  })
  await waitFor(async () => (await fetch(`${base}/api/v1/admin/list`)).status === 401, 30_000).catch(() => {
    throw new Error(`gateway did not find the flows:\n${gateway.output()}`)
  })
}, 90_000)

afterAll(async () => {
  await Promise.all([stop(gateway), stop(flows)])
  await receiver?.close()
  await Promise.all([nats?.stop(), redis?.stop(), db?.drop()])
})

const only = (spans: ReceivedSpan[], pick: (s: ReceivedSpan) => boolean, what: string) => {
  const found = spans.filter(pick)
  if (found.length !== 1) throw new Error(`expected one ${what}, found ${found.length}: ${spans.map((s) => s.name).join(', ')}`)
  return found[0]!
}

async function login(): Promise<string> {
  const res = await fetch(`${base}/api/v1/admin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: EMAIL, password: PASSWORD }) })
  expect(res.status).toBe(200)
  return ((await res.json()) as { data: { token: string } }).data.token
}

describe('one request, one trace tree over OTLP/HTTP', () => {
  it('gateway SERVER → NATS CLIENT → flow SERVER → steps → pg and redis spans, with the standard attributes and resource', { timeout: 60_000 }, async () => {
    const token = await login()
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const callerSpan = '00f067aa0ba902b7'
    const res = await fetch(`${base}/api/v1/admin/list?page=1&limit=5`, {
      headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${callerSpan}-01`, 'user-agent': 'otlp-test' },
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-trace-id')).toBe(traceId)

    // Wait for the whole tree: both processes export on their own schedule.
    await waitFor(() => {
      const t = receiver.trace(traceId)
      return t.some((s) => s.attributes['db.system'] === 'postgresql' || s.attributes['db.system.name'] === 'postgresql') && t.some((s) => s.name === 'step writeCache') && t.some((s) => s.kind === KIND.server && s.resource['service.name'] === 'flowgate-gateway')
    }, 20_000).catch(() => {
      throw new Error(`incomplete trace: ${receiver.trace(traceId).map((s) => `${s.name}(${s.kind})`).join(', ')}`)
    })
    const spans = receiver.trace(traceId)
    const byId = new Map(spans.map((s) => [s.spanId, s]))

    const server = only(spans, (s) => s.kind === KIND.server && s.resource['service.name'] === 'flowgate-gateway', 'gateway server span')
    expect(server.parentSpanId).toBe(callerSpan)
    expect(server.name).toBe('GET /api/v1/admin/list')
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/api/v1/admin/list',
      'http.route': '/api/v1/admin/list',
      'http.response.status_code': 200,
      'client.address': '127.0.0.1',
      'user_agent.original': 'otlp-test',
    })
    expect(server.resource).toMatchObject({ 'deployment.environment.name': 'test', team: 'edge ops' })

    const client = only(spans, (s) => s.kind === KIND.client && s.attributes['messaging.system'] === 'nats', 'NATS client span')
    expect(client.parentSpanId).toBe(server.spanId)
    expect(client.attributes).toMatchObject({ 'messaging.destination.name': 'api.v1.admin.list', 'messaging.operation.type': 'send' })

    const run = only(spans, (s) => s.resource['service.name'] === 'flowgate-flows' && s.kind === KIND.server, 'flow run span')
    expect(run.parentSpanId).toBe(client.spanId)
    expect(run.name).toBe('process api.v1.admin.list')
    expect(run.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.operation.type': 'process', 'flowgate.flow': 'admin.list' })

    const steps = spans.filter((s) => s.name.startsWith('step '))
    expect(steps.map((s) => s.name).sort()).toEqual(['step queryAdmins', 'step readCache', 'step writeCache'])
    for (const step of steps) {
      expect(step.kind).toBe(KIND.internal)
      expect(step.parentSpanId).toBe(run.spanId)
      expect(step.attributes['flowgate.outcome']).toBe('ok')
    }
    const stepNamed = (name: string) => steps.find((s) => s.name === `step ${name}`)!

    // The libraries' own spans hang under the step that made the call.
    const dbSpans = spans.filter((s) => s.attributes['db.system'] === 'postgresql' || s.attributes['db.system.name'] === 'postgresql')
    expect(dbSpans.length).toBeGreaterThan(0)
    for (const s of dbSpans) expect(ancestorNames(s, byId)).toContain('step queryAdmins')
    const redisSpans = spans.filter((s) => s.attributes['db.system'] === 'redis' || s.attributes['db.system.name'] === 'redis')
    const underRead = redisSpans.filter((s) => s.parentSpanId === stepNamed('readCache').spanId)
    const underWrite = redisSpans.filter((s) => s.parentSpanId === stepNamed('writeCache').spanId)
    expect(underRead.length).toBeGreaterThan(0)
    expect(underWrite.length).toBeGreaterThan(0)

    // One tree: every span but the gateway's reaches the gateway's span through its parents.
    for (const s of spans) if (s !== server) expect(ancestorNames(s, byId)).toContain(server.name)

    // Nothing secret went out: no token, no password, no query parameter values, no stack.
    const wire = JSON.stringify(spans, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
    expect(wire).not.toContain(token)
    expect(wire).not.toContain(PASSWORD)
    expect(wire).not.toContain('exception.stacktrace')
    // Redis here has no CACHE.TAG (the cache proxy does): that call fails, and its error went out without the keys it named.
    const tagged = redisSpans.find((s) => s.status.code === 2)!
    expect(tagged.name).toBe('CACHE.TAG')
    expect(tagged.status.message).toContain('unknown command')
    expect(tagged.status.message).not.toContain('flowgate:admins')
    expect(tagged.events.find((e) => e.name === 'exception')?.attributes['exception.message']).not.toContain('flowgate:admins')
  })

  it('a failing step records its error code and status without a stack or internals', { timeout: 30_000 }, async () => {
    const traceId = '5bf92f3577b34da6a3ce929d0e0e4737'
    const res = await fetch(`${base}/api/v1/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b8-01` },
      body: JSON.stringify({ email: EMAIL, password: 'not-the-password' }),
    })
    expect(res.status).toBe(401)
    await waitFor(() => receiver.trace(traceId).some((s) => s.attributes['error.type'] === 'UNAUTHORIZED' && s.name.startsWith('step ')), 20_000)
    const failed = receiver.trace(traceId).find((s) => s.attributes['error.type'] === 'UNAUTHORIZED' && s.name.startsWith('step '))!
    expect(failed.status.code).toBe(2) // STATUS_CODE_ERROR
    expect(failed.attributes['flowgate.outcome']).toBe('error')
    const exception = failed.events.find((e) => e.name === 'exception')!
    expect(exception.attributes['exception.type']).toBe('UNAUTHORIZED')
    expect(exception.attributes['exception.stacktrace']).toBeUndefined()
    expect(JSON.stringify(receiver.trace(traceId), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))).not.toContain('not-the-password')
    // A 4xx is the caller's fault: the gateway's server span is not an error.
    await waitFor(() => receiver.trace(traceId).some((s) => s.kind === KIND.server && s.resource['service.name'] === 'flowgate-gateway'), 10_000)
    const server = receiver.trace(traceId).find((s) => s.kind === KIND.server && s.resource['service.name'] === 'flowgate-gateway')!
    expect(server.attributes['http.response.status_code']).toBe(401)
    expect(server.status.code ?? 0).not.toBe(2)
  })
})

function ancestorNames(span: ReceivedSpan, byId: Map<string, ReceivedSpan>): string[] {
  const names: string[] = []
  let parent = span.parentSpanId ? byId.get(span.parentSpanId) : undefined
  while (parent && names.length < 50) {
    names.push(parent.name)
    parent = parent.parentSpanId ? byId.get(parent.parentSpanId) : undefined
  }
  return names
}
