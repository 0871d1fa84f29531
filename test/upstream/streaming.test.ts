// Streaming both ways and hostile input: a 1 GB answer with flat memory, an aborted upload that
// aborts the upstream request, HTTPS targets, and what an attacker sends (path traversal, bad
// header bytes, a Host header, smuggling shapes, unexpected 1xx/101 answers).
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { connect, createServer as createTcpServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort, waitFor } from '../harness/process.js'
import { captureLogs } from '../harness/stack.js'
import { call, rawCall, startProxyGateway, startUpstream, type ProxyGateway, type TestUpstream } from './harness.js'

let nats: NatsServer
let gw: ProxyGateway
let plain: TestUpstream
let big: TestUpstream
let sink: TestUpstream
let httpsPort = 0
let oneXxPort = 0
const uploadAborted = { value: false }
const ONE_GB = 1024 * 1024 * 1024
const cleanup: Array<() => Promise<unknown>> = []
const logs = captureLogs('warn')

beforeAll(async () => {
  nats = await startNats()
  plain = await startUpstream('plain')
  const chunk = Buffer.alloc(256 * 1024, 0x61)
  big = await startUpstream('big', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(ONE_GB) })
    let sent = 0
    const pump = () => {
      while (sent < ONE_GB) {
        sent += chunk.length
        if (!res.write(chunk)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  })
  sink = await startUpstream(
    'sink',
    (req, res) => {
      req.on('data', () => {})
      req.on('aborted', () => (uploadAborted.value = true))
      req.on('error', () => (uploadAborted.value = true))
      req.on('end', () => res.end('done'))
    },
    { recordBody: false },
  )
  // HTTPS with a self-signed certificate the services file names as its CA.
  httpsPort = await freePort()
  const tls = createHttpsServer({ key: readFileSync(new URL('./fixtures/key.pem', import.meta.url)), cert: readFileSync(new URL('./fixtures/cert.pem', import.meta.url)) }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ tls: true, url: req.url }))
  })
  await new Promise<void>((r) => tls.listen(httpsPort, '127.0.0.1', r))
  cleanup.push(() => new Promise((r) => tls.close(r)))
  // A server that answers 103 then 200, or a 101 nobody asked for.
  oneXxPort = await freePort()
  const raw = createTcpServer((s) => {
    s.once('data', (d) => {
      const line = d.toString().split('\r\n')[0]!
      if (line.includes('/switch')) s.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
      else s.end('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
    })
  })
  await new Promise<void>((r) => raw.listen(oneXxPort, '127.0.0.1', r))
  cleanup.push(() => new Promise((r) => raw.close(r)))

  const fast = { timeouts: { connectMs: 1000, tryMs: 2000, requestMs: 5000, idleMs: 30_000 } }
  gw = await startProxyGateway(
    nats.url,
    {
      upstreams: {
        plain: { ...fast, targets: [{ url: `${plain.url}/inner` }] },
        big: { ...fast, targets: [{ url: big.url }] },
        sink: { ...fast, targets: [{ url: sink.url }] },
        secure: { ...fast, targets: [{ url: `https://127.0.0.1:${httpsPort}` }], tls: { caFile: new URL('./fixtures/cert.pem', import.meta.url).pathname } },
        odd: { ...fast, targets: [{ url: `http://127.0.0.1:${oneXxPort}` }], retry: { retries: 0 } },
      },
      routes: [
        { path: '/plain/*', upstream: 'plain', stripPrefix: true, auth: 'public', bodyLimitBytes: 1000 },
        { path: '/big', upstream: 'big', auth: 'public' },
        { path: '/sink', upstream: 'sink', auth: 'public', bodyLimitBytes: ONE_GB },
        { path: '/secure/*', upstream: 'secure', stripPrefix: true, auth: 'public' },
        { path: '/odd/*', upstream: 'odd', auth: 'public' },
      ],
    },
    logs.log,
  )
})

afterAll(async () => {
  await gw?.stop()
  for (const c of cleanup) await c()
  for (const u of [plain, big, sink]) await u?.stop()
  await nats?.stop()
})

describe('streaming', () => {
  it('streams a 1 GB answer through with flat memory', async () => {
    global.gc?.()
    const before = process.memoryUsage().rss
    let peak = before
    const res = await fetch(`${gw.base}/big`)
    expect(res.headers.get('content-length')).toBe(String(ONE_GB))
    let received = 0
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      received += c.length
      if ((received & 0xfffffff) < c.length) peak = Math.max(peak, process.memoryUsage().rss)
    }
    expect(received).toBe(ONE_GB)
    // Everything (client, gateway, upstream) is in this process: a buffered gigabyte would show here.
    expect(peak - before).toBeLessThan(200 * 1024 * 1024)
  }, 180_000)

  it('aborts the upstream request when the client aborts its upload', async () => {
    const { port } = new URL(gw.base)
    const req = httpRequest({ host: '127.0.0.1', port, path: '/sink', method: 'POST', headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } })
    req.on('error', () => {})
    req.write(Buffer.alloc(64 * 1024, 1))
    await waitFor(() => sink.seen.length === 1)
    req.destroy()
    await waitFor(() => uploadAborted.value, 5000)
    expect(uploadAborted.value).toBe(true)
  })

  it('refuses a body over the route limit with 413, streamed or declared', async () => {
    const declared = await call(gw.base, '/plain/x', { method: 'POST', body: Buffer.alloc(2000) })
    expect(declared.status).toBe(413)
    expect(declared.json()).toMatchObject({ errorCode: 'PAYLOAD_TOO_LARGE' })
    const { port } = new URL(gw.base)
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/plain/x', method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume()
        resolve(res.statusCode!)
      })
      req.on('error', reject)
      req.write(Buffer.alloc(600))
      req.end(Buffer.alloc(600))
    })
    expect(status).toBe(413)
  })

  it('forwards to an HTTPS target verified against the configured CA', async () => {
    const res = await call(gw.base, '/secure/hello?x=1')
    expect(res.status).toBe(200)
    expect(res.json()).toEqual({ tls: true, url: '/hello?x=1' })
  })

  it('skips a 103 before the answer, and answers 502 for a 101 it did not ask for', async () => {
    const hints = await call(gw.base, '/odd/hints')
    expect(hints.status).toBe(200)
    expect(hints.text).toBe('ok')
    const upgrade = await call(gw.base, '/odd/switch')
    expect(upgrade.status).toBe(502)
    expect(upgrade.json()).toMatchObject({ errorCode: 'BAD_GATEWAY' })
  })
})

/** Sends raw bytes to the gateway and returns what comes back before the connection ends. */
function rawRequest(base: string, bytes: string): Promise<string> {
  const { port } = new URL(base)
  return new Promise((resolve) => {
    const s = connect(Number(port), '127.0.0.1', () => s.write(bytes))
    let out = ''
    s.on('data', (d) => (out += d.toString()))
    s.on('close', () => resolve(out))
    s.on('error', () => resolve(out))
    setTimeout(() => s.destroy(), 3000)
  })
}

describe('hostile input', () => {
  it('refuses traversal out of the route prefix, plain or percent-encoded, before it reaches the upstream', async () => {
    const before = plain.seen.length
    for (const p of ['/plain/../admin', '/plain/%2e%2e/admin', '/plain/a/%2E%2E/%2e%2e/secret', '/plain/..%2fadmin', '/plain/a//b', '/plain/..;/x', '/plain/a%5c..%5cb', '/pl%61in/x']) {
      const res = await rawCall(gw.base, p)
      expect([400, 404], p).toContain(res.status)
      expect(JSON.parse(res.text), p).toMatchObject({ success: false })
    }
    expect(plain.seen.length).toBe(before)
    const ok = await call(gw.base, '/plain/a.b/.well-known/c')
    expect(ok.json()).toMatchObject({ url: '/inner/a.b/.well-known/c' })
  })

  it('never picks a target by the Host header', async () => {
    const res = await rawCall(gw.base, '/plain/who', { headers: { host: `127.0.0.1:${big.port}` } })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toMatchObject({ instance: 'plain' })
    expect(plain.seen.at(-1)!.headers.host).toBe(`127.0.0.1:${plain.port}`)
    expect(plain.seen.at(-1)!.headers['x-forwarded-host']).toBe(`127.0.0.1:${big.port}`)
  })

  it('refuses NUL and CR/LF in header values and both Content-Length and Transfer-Encoding (Node parser, 400), nothing reaches the upstream', async () => {
    const before = plain.seen.length
    const nul = await rawRequest(gw.base, 'GET /plain/x HTTP/1.1\r\nHost: a\r\nX-Bad: a\u0000b\r\n\r\n')
    expect(nul).toMatch(/^HTTP\/1\.1 400/)
    const crlf = await rawRequest(gw.base, 'GET /plain/x HTTP/1.1\r\nHost: a\r\nX-Bad: a\rInjected: b\r\n\r\n')
    expect(crlf).toMatch(/^HTTP\/1\.1 400/)
    const smuggle = await rawRequest(gw.base, 'POST /plain/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /plain/smuggled HTTP/1.1\r\nHost: a\r\n\r\n')
    expect(smuggle).toMatch(/^HTTP\/1\.1 400/)
    expect(plain.seen.length).toBe(before)
    expect(plain.seen.some((s) => s.url.includes('smuggled'))).toBe(false)
  })

  it('sends one framing upstream for a chunked body (no Content-Length beside Transfer-Encoding)', async () => {
    const { port } = new URL(gw.base)
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/plain/chunked', method: 'PUT', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume()
        res.on('end', resolve)
      })
      req.on('error', reject)
      req.write('abc')
      req.end('def')
    })
    const seen = plain.seen.at(-1)!
    expect(seen.body.toString()).toBe('abcdef')
    expect(seen.headers['content-length'] === undefined || seen.headers['transfer-encoding'] === undefined).toBe(true)
  })
})
