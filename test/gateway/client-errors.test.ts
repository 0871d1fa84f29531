// Every error answer of the gateway is the envelope with a trace id, including what is refused before
// the router: Node's HTTP parser (malformed requests, smuggling shapes, 431, 408) and Fastify (bad
// percent-encoding). A real gateway on a real HTTP server, spoken to over raw TCP where clients like
// fetch would refuse to send such requests.
import { connect as tcpConnect } from 'node:net'
import { connect, type NatsConnection } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { flows as shippedFlows } from '../../flows/registry.js'
import { buildGateway, type Gateway } from '../../server/gateway.js'
import { createGatewayHttpServer, type GatewayHttpServer } from '../../server/http-server.js'
import { captureLogs, startWorker, testConfig, waitForRoute, type TestWorker } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort } from '../harness/process.js'

let nats: NatsServer
let config: Config
let nc: NatsConnection
let http: GatewayHttpServer
let gateway: Gateway
let worker: TestWorker
let port: number
const logs = captureLogs('info')

beforeAll(async () => {
  nats = await startNats()
  config = testConfig(nats.url, { httpRequestTimeoutMs: 1000, rateLimitEnabled: false, eventsEnabled: false })
  port = await freePort()
  http = createGatewayHttpServer({ requestTimeoutMs: config.httpRequestTimeoutMs, log: logs.log })
  await http.listen(port, '127.0.0.1')
})

afterAll(async () => {
  await gateway?.close()
  await http?.close()
  await worker?.stop()
  await nc?.close()
  await nats?.stop()
})

/** Sends raw bytes and reads until the server closes (or `waitMs` passes); the response as text. */
function raw(bytes: string, opts: { waitMs?: number; endAfter?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1')
    let out = ''
    const timer = setTimeout(() => (socket.destroy(), resolve(out)), opts.waitMs ?? 5000)
    socket.on('data', (b) => (out += b.toString('latin1')))
    socket.on('close', () => (clearTimeout(timer), resolve(out)))
    socket.on('error', (err) => (clearTimeout(timer), out ? resolve(out) : reject(err)))
    socket.write(bytes, 'latin1')
    if (opts.endAfter) socket.end()
  })
}

interface Parsed {
  status: number
  headers: Record<string, string>
  body: Record<string, unknown>
}

/** Every response on the connection, in order (each carries a Content-Length). */
function parseAll(stream: string): Parsed[] {
  const out: Parsed[] = []
  let rest = stream
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n')
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n')
    const headers: Record<string, string> = {}
    for (const l of lines) {
      const i = l.indexOf(':')
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
    }
    const length = Number(headers['content-length'])
    expect(Number.isInteger(length), `content-length in ${rest.slice(0, end)}`).toBe(true)
    const text = rest.slice(end + 4, end + 4 + length)
    out.push({ status: Number(statusLine!.split(' ')[1]), headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} })
    rest = rest.slice(end + 4 + length)
  }
  return out
}

const parse = (stream: string): Parsed => {
  const all = parseAll(stream)
  expect(all).toHaveLength(1)
  return all[0]!
}

/** The envelope with a trace id in the body and the header, and a request id. */
function expectEnvelope(r: Parsed, status: number, errorCode: string) {
  expect(r.status).toBe(status)
  expect(r.headers['content-type']).toMatch(/^application\/json/)
  expect(r.body).toMatchObject({ success: false, status, errorCode, message: expect.any(String), traceId: expect.stringMatching(/^[0-9a-f]{32}$/) })
  expect(r.headers['x-trace-id']).toBe(r.body.traceId)
  expect(r.headers['x-request-id']).toMatch(/^[0-9A-Za-z._:-]{1,64}$/)
  expect(r.body.detailed).toBeUndefined()
}

const MALFORMED: Array<[string, string]> = [
  ['a bare CR in a header value', 'GET /health HTTP/1.1\r\nHost: x\r\nX-Evil: a\rb\r\n\r\n'],
  ['a bare LF inside a header value', 'GET /health HTTP/1.1\r\nHost: x\r\nX-Evil: a\nb: c\r\n\r\n'],
  ['Content-Length with Transfer-Encoding (CL.TE smuggling)', 'POST /api/v1/orders/quote HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'],
  ['two different Content-Lengths', 'POST /api/v1/orders/quote HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x'],
  ['a chunk size that is not hex', 'POST /api/v1/orders/quote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'],
  ['a space before the header colon', 'GET /health HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n'],
  ['an obsolete line folding', 'GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n'],
  ['garbage for a request line', 'HELLO THERE\r\n\r\n'],
]

describe.each([['waiting for the bus (pre-bus server)'], ['serving (Fastify on the same server)']])('%s', (phase) => {
  beforeAll(async () => {
    if (!phase.startsWith('serving')) return
    nc = await connect({ servers: nats.url })
    worker = await startWorker(config, shippedFlows, logs.log)
    gateway = await buildGateway(config, { nats: nc, log: logs.log, tokens: createTokenService(config), tracing: disabledTracing, registry: new Registry(), http })
    await gateway.discovery.refresh()
    await gateway.app.ready()
    http.activate()
    await waitForRoute(gateway, 'POST', '/api/v1/orders/quote')
  })

  it.each(MALFORMED)('refuses %s with the 400 envelope and closes the connection', async (_name, request) => {
    const responses = parseAll(await raw(request))
    if (phase.startsWith('serving')) {
      expect(responses).toHaveLength(1)
      expectEnvelope(responses[0]!, 400, 'VALIDATION_ERROR')
      return
    }
    // Waiting for the bus, a request whose headers parse is answered 503 before its body is read;
    // a malformed body after that only closes the connection, or is refused like a next request.
    expect(responses.length).toBeGreaterThanOrEqual(1)
    expect(responses.length).toBeLessThanOrEqual(2)
    for (const r of responses) expectEnvelope(r, r.status, r.status === 503 ? 'SERVICE_UNAVAILABLE' : 'VALIDATION_ERROR')
    expect(responses.map((r) => r.status).every((st) => st === 400 || st === 503)).toBe(true)
  })

  it('answers headers over 16 KiB with the 431 envelope', async () => {
    const r = parse(await raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`))
    expectEnvelope(r, 431, 'HEADERS_TOO_LARGE')
  })

  it('answers a body that stops coming with the 408 envelope after HTTP_REQUEST_TIMEOUT_MS', async () => {
    const started = Date.now()
    const responses = parseAll(await raw('POST /api/v1/orders/quote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"it', { waitMs: 6000 }))
    if (!phase.startsWith('serving')) expectEnvelope(responses.shift()!, 503, 'SERVICE_UNAVAILABLE')
    expect(responses).toHaveLength(1)
    expectEnvelope(responses[0]!, 408, 'REQUEST_TIMEOUT')
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    expect(Date.now() - started).toBeLessThan(4000)
  })

  it('serves /health with or without a trailing slash or a query', async () => {
    for (const url of ['/health', '/health/', '/health?probe=1']) expect((await fetch(`http://127.0.0.1:${port}${url}`)).status, url).toBe(200)
  })

  it('logs each refusal once with its trace id', async () => {
    const r = parse(await raw('GET /health HTTP/1.1\r\nHost: x\r\nX-Evil: a\rb\r\n\r\n'))
    const line = logs.lines.find((l) => l.trace_id === r.body.traceId)
    expect(line).toMatchObject({ status: 400, reason: expect.stringMatching(/^HPE_/) })
  })
})

describe('before the router, once serving', () => {
  const get = (path: string, init: RequestInit = {}) => fetch(`http://127.0.0.1:${port}${path}`, init)

  it('answers bad percent-encoding with the 400 envelope and a trace id, never Fastify\'s own shape', async () => {
    for (const path of ['/api/v1/%ff', '/api/v1/orders/%E0%A4%A', '/admin/blocks/%2', '/health/%c0']) {
      const res = await get(path, { headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } })
      expect(res.status, path).toBe(400)
      const body = (await res.json()) as Record<string, unknown>
      expect(body).toEqual({
        success: false,
        status: 400,
        errorCode: 'VALIDATION_ERROR',
        message: 'Malformed URL',
        detailed: [{ field: 'url', message: 'is not valid percent-encoding' }],
        traceId: '0af7651916cd43dd8448eb211c80319c',
      })
      expect(res.headers.get('x-trace-id')).toBe('0af7651916cd43dd8448eb211c80319c')
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f]{24}$/)
    }
  })

  it('lifts nothing and fails nothing for an address that decodes to a percent sign', async () => {
    const admin = { authorization: `Bearer ${createTokenService(config).sign({ sub: 'a', role: 'admin' }).token}` }
    for (const path of ['/admin/blocks/%25', '/admin/blocks/%2525', '/admin/blocks/%25ff', '/admin/blocks/fe80::1%25eth0']) {
      const res = await get(path, { method: 'DELETE', headers: admin })
      expect(res.status, path).not.toBe(500) // the zone id form is an address: 503 here, the blocklist is off
      expect((await res.json()) as Record<string, unknown>).toMatchObject({ success: false, traceId: expect.any(String) })
    }
    const percent = await get('/admin/blocks/%25', { method: 'DELETE', headers: admin })
    expect(await percent.json()).toMatchObject({ status: 400, errorCode: 'VALIDATION_ERROR', detailed: [{ field: 'address', message: 'must be an IPv4 or IPv6 address' }] })
  })

  it('answers a path served under other methods with 405 and Allow, the gateway\'s own routes too', async () => {
    const cases: Array<[string, string, string]> = [
      ['POST', '/health', 'GET, HEAD'],
      ['DELETE', '/metrics/', 'GET, HEAD'],
      ['PUT', '/docs', 'GET, HEAD'],
      ['DELETE', '/admin/blocks', 'GET, HEAD'],
      ['GET', '/admin/blocks/203.0.113.1', 'DELETE'],
      ['GET', '/api/v1/orders/quote', 'POST'],
      ['OPTIONS', '/api/v1/orders/quote', 'POST'],
      ['POST', '/api/v1/healthcheck', 'GET, HEAD'],
    ]
    for (const [method, path, allow] of cases) {
      const res = await get(path, { method })
      expect(res.status, `${method} ${path}`).toBe(405)
      expect(res.headers.get('allow'), `${method} ${path}`).toBe(allow)
      expect(await res.json()).toMatchObject({ success: false, status: 405, errorCode: 'METHOD_NOT_ALLOWED' })
    }
    const missing = await get('/no/such/path', { method: 'OPTIONS' })
    expect(missing.status).toBe(404)
    expect(await missing.json()).toMatchObject({ errorCode: 'NOT_FOUND' })
  })

  it('answers /ready\'s refusal as the envelope naming each failing check', async () => {
    const closing = await buildGateway(config, { nats: nc, log: logs.log, tokens: createTokenService(config), tracing: disabledTracing, registry: new Registry() })
    await closing.app.ready()
    // not discovered yet: the flows check fails
    const res = await closing.app.inject({ url: '/ready' })
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ success: false, status: 503, errorCode: 'SERVICE_UNAVAILABLE', message: 'Not ready: flows', detailed: [{ field: 'flows', message: 'not ready' }] })
    await closing.close()
  })

  it('lists every route it serves in /docs: the flows, and its own ops and admin routes', async () => {
    const doc = (await (await get('/docs/json')).json()) as { paths: Record<string, Record<string, { security?: unknown; summary?: string; parameters?: unknown[] }>> }
    for (const r of gateway.discovery.table().routes) expect(doc.paths[r.path.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()], r.path).toBeDefined()
    for (const path of ['/health', '/ready', '/metrics', '/docs', '/docs/json', '/admin/blocks', '/traces/{traceId}']) expect(doc.paths[path]?.get, path).toBeDefined()
    expect(doc.paths['/admin/blocks/{address}']!.delete).toMatchObject({ security: [{ bearer: [] }], parameters: [expect.objectContaining({ name: 'address', in: 'path' })] })
    expect(doc.paths['/admin/blocks']!.get!.security).toEqual([{ bearer: [] }])
    expect(doc.paths['/traces/{traceId}']!.get!.security).toEqual([{ bearer: [] }])
    expect(doc.paths['/health']!.get!.security).toBeUndefined()
    expect(doc.paths['/health']!.get!.summary).toMatch(/Liveness/)
    expect(doc.paths['/api/v1/admin/create-admin']!.post).toBeDefined()
    expect(Object.keys(doc.paths['/auth/token']!.post!)).toContain('requestBody')
    const html = await (await get('/docs')).text()
    for (const path of ['/admin/blocks/:address', '/health', '/metrics', '/api/v1/orders/quote']) expect(html).toContain(path)
  })
})
