// WebSocket proxying with real `ws` servers upstream and real clients: frames byte-identical to a
// direct connection both ways, subprotocols and forwarding headers, and every refusal a plain HTTP
// envelope before any upgrade (no route, no auth, bad handshake, rate limit, upstream down).
import { createServer as createTcpServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort } from '../harness/process.js'
import { captureLogs } from '../harness/stack.js'
import { adminHeader, call, startProxyGateway, startUpstream, type ProxyGateway } from './harness.js'
import { echoSocket, openWs, rawExchange, rawUpgrade, startWsUpstream, upgradeHeaders, wsUrl, type Recorder, type WsUpstream } from './ws-harness.js'
import { createTokenService } from '../../lib/auth.js'
import { testConfig } from '../harness/stack.js'

let nats: NatsServer
let gw: ProxyGateway
let up: WsUpstream
let port: number
const sink = captureLogs('info')
const cleanup: Array<() => Promise<unknown>> = []
let userToken: string

const overrides = { wsAuthQueryParam: 'access_token', wsAuthSubprotocolPrefix: 'bearer.' }

beforeAll(async () => {
  nats = await startNats()
  // The upstream picks graphql-transport-ws when offered, else nothing; pings are relayed, so it answers its own.
  up = await startWsUpstream('echo', (ws, req, self) => {
    // A greeting sent the moment the socket opens, before the client says anything.
    if (req.url?.includes('greet')) ws.send('welcome')
    echoSocket(ws, req, self)
  }, { handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) })
  const http = await startUpstream('http')
  // Not a WebSocket server: it answers every request, an upgrade too, with its own status.
  const refusing = await startUpstream('refusing', (req, res) => {
    const status = req.url?.startsWith('/fail') ? 503 : 403
    res.writeHead(status, { 'content-type': 'application/json', 'x-upstream': 'refusing' }).end(JSON.stringify({ upstream: 'says no', status }))
  })
  cleanup.push(() => refusing.stop())
  const silentPort = await freePort()
  // Accepts connections and never answers a handshake.
  const silent = createTcpServer(() => {}).listen(silentPort, '127.0.0.1')
  cleanup.push(async () => silent.close(), () => up.stop(), () => http.stop())
  const refusedPort = await freePort()
  const fast = { timeouts: { connectMs: 300, tryMs: 400, requestMs: 2000 }, retry: { retries: 0 } }
  gw = await startProxyGateway(
    nats.url,
    {
      upstreams: {
        echo: { targets: [{ url: up.url }], stripRequestHeaders: ['x-internal-secret'] },
        plain: { targets: [{ url: http.url }] },
        refusing: { targets: [{ url: refusing.url }], retry: { retries: 0 } },
        down: { ...fast, targets: [{ url: `http://127.0.0.1:${refusedPort}` }] },
        silent: { ...fast, targets: [{ url: `http://127.0.0.1:${silentPort}` }] },
      },
      routes: [
        { path: '/ws/*', upstream: 'echo', auth: 'public', websocket: true, stripPrefix: true },
        { path: '/private/*', upstream: 'echo', websocket: { maxMessageBytes: 4096 } },
        { path: '/plain/*', upstream: 'plain', auth: 'public' },
        { path: '/refusing/*', upstream: 'refusing', auth: 'public', websocket: true, stripPrefix: true },
        { path: '/down/*', upstream: 'down', auth: 'public', websocket: true },
        { path: '/silent/*', upstream: 'silent', auth: 'public', websocket: true },
        { path: '/limited/*', upstream: 'echo', auth: 'public', websocket: true, rateLimit: { capacity: 3, refillPerSec: 0.01 } },
      ],
    },
    sink.log,
    { ...overrides, rateLimitEnabled: true, rateLimitCapacity: 100000, rateLimitRefillPerSec: 10000 },
  )
  cleanup.push(() => gw.stop())
  port = Number(new URL(gw.base).port)
  userToken = createTokenService(testConfig(nats.url)).sign({ sub: 'user-7', role: 'customer' }).token
})
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
  await nats?.stop()
})

/** The same script run against a socket: what it sees, for comparing direct with through the gateway. */
async function script(rec: Recorder): Promise<unknown[]> {
  const ws = rec.ws
  const out: unknown[] = []
  const seen = (e: Awaited<ReturnType<Recorder['next']>>) => (e.kind === 'message' ? { kind: e.kind, binary: e.binary, hex: e.data.toString('hex') } : e.kind === 'close' ? e : { kind: e.kind, hex: e.data.toString('hex') })
  ws.send('héllo wörld ✓ \u{1F600}')
  out.push(seen(await rec.next('message')))
  ws.send(Buffer.from([0, 255, 1, 254, 0xc3, 0x28]), { binary: true })
  out.push(seen(await rec.next('message')))
  ws.send('')
  out.push(seen(await rec.next('message')))
  ws.send(Buffer.alloc(0), { binary: true })
  out.push(seen(await rec.next('message')))
  // A fragmented text message (three frames, a multi-byte character split across two) and a binary one.
  const text = Buffer.from('fragments: ééé ✓✓ done')
  ws.send(text.subarray(0, 12), { fin: false })
  ws.send(text.subarray(12, 15), { fin: false })
  ws.send(text.subarray(15), { fin: true })
  out.push(seen(await rec.next('message')))
  const big = Buffer.alloc(300_000, 7)
  ws.send(big.subarray(0, 100_000), { binary: true, fin: false })
  ws.send(big.subarray(100_000), { binary: true, fin: true })
  out.push(seen(await rec.next('message')))
  // A ping's payload comes back in the upstream's own pong.
  ws.ping(Buffer.from('are you there'))
  out.push(seen(await rec.next('pong')))
  ws.close(4321, 'bye from the client ✓')
  out.push(seen(await rec.next('close')))
  return out
}

describe('WebSocket proxying', () => {
  it('relays text, binary, empty and fragmented messages, ping payloads and the close byte-identical to a direct connection', async () => {
    const direct = await script(await openWs(wsUrl(up.url, '/direct')))
    const through = await script(await openWs(wsUrl(gw.base, '/ws/through')))
    expect(through).toEqual(direct)
    expect(direct).toHaveLength(8)
    expect(direct.at(-1)).toEqual({ kind: 'close', code: 4321, reason: 'bye from the client ✓' })
  })

  it('passes the upstream close code and reason, its pings and its messages to the client', async () => {
    const before = up.sockets.length
    const rec = await openWs(wsUrl(gw.base, '/ws/server-closes'))
    const theirs = up.sockets[before]!
    theirs.ping(Buffer.from('ping from upstream'))
    expect(await rec.next('ping')).toEqual({ kind: 'ping', data: Buffer.from('ping from upstream') })
    theirs.send(Buffer.from([1, 2, 3]), { binary: true })
    expect(await rec.next('message')).toEqual({ kind: 'message', data: Buffer.from([1, 2, 3]), binary: true })
    theirs.close(1013, 'try again later')
    expect(await rec.closed).toEqual({ code: 1013, reason: 'try again later' })
    // A close without a code arrives without one (1005).
    const rec2 = await openWs(wsUrl(gw.base, '/ws/no-code'))
    up.sockets.at(-1)!.close()
    expect(await rec2.closed).toEqual({ code: 1005, reason: '' })
  })

  it('relays what the upstream sends the moment it opens, and many messages in order', async () => {
    const rec = await openWs(wsUrl(gw.base, '/ws/greet'))
    expect(await rec.next('message')).toMatchObject({ data: Buffer.from('welcome'), binary: false })
    for (let i = 0; i < 500; i++) rec.ws.send(String(i))
    const got: string[] = []
    for (let i = 0; i < 500; i++) got.push(((await rec.next('message')) as { data: Buffer }).data.toString())
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => String(i)))
    rec.ws.close()
    await rec.closed
  })

  it('offers the client subprotocols and answers the upstream pick; forwards as the HTTP proxy does', async () => {
    const before = up.seen.length
    const rec = await openWs(wsUrl(gw.base, '/ws/sub?x=1&y=%20'), ['graphql-transport-ws', 'other'], {
      headers: { 'x-internal-secret': 'never', 'x-request-id': 'req-ws-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', cookie: 'a=1', origin: 'https://app.example' },
    })
    expect(rec.ws.protocol).toBe('graphql-transport-ws')
    const seen = up.seen[before]!
    expect(seen.url).toBe('/sub?x=1&y=%20')
    expect(seen.headers['sec-websocket-protocol']).toBe('graphql-transport-ws, other')
    expect(seen.headers['x-internal-secret']).toBeUndefined()
    expect(seen.headers['x-request-id']).toBe('req-ws-1')
    expect(seen.headers.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/)
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(seen.headers['x-forwarded-proto']).toBe('http')
    expect(seen.headers.cookie).toBe('a=1')
    expect(seen.headers.origin).toBe('https://app.example')
    expect(seen.headers.host).toBe(`127.0.0.1:${up.port}`)
    rec.ws.close()
    await rec.closed
    // Offered protocols the upstream does not pick: none answered (as RFC 6455 allows), the socket works.
    const raw = await rawUpgrade(port, '/ws/none', upgradeHeaders({ 'Sec-WebSocket-Protocol': 'chat' }))
    expect(raw.status).toBe(101)
    expect(raw.head.toLowerCase()).not.toContain('sec-websocket-protocol')
    expect(raw.head).toMatch(/\r\nx-trace-id: [0-9a-f]{32}/i)
    expect(raw.head).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
    raw.socket.destroy()
  })

  it('refuses with a plain envelope, no upgrade: no route, a route without websocket, a flow path, a POST', async () => {
    for (const [path, status] of [
      ['/nowhere', 404],
      ['/plain/x', 404],
      ['/health', 404],
    ] as const) {
      const r = await rawUpgrade(port, path, upgradeHeaders())
      expect(r.status, path).toBe(status)
      expect(JSON.parse(r.body)).toMatchObject({ success: false, status, errorCode: 'NOT_FOUND' })
      expect(r.head).toMatch(/\r\nconnection: close/i)
      expect(r.head).toMatch(/\r\nx-trace-id: [0-9a-f]{32}/i)
    }
    const post = await rawExchange(port, 'POST /ws/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n')
    expect(post).toMatch(/^HTTP\/1.1 400 /)
    // Plain HTTP on a websocket route is proxied as usual (the upstream answers 426 itself).
    expect((await call(gw.base, '/ws/plain-get')).status).toBe(426)
  })

  it('refuses a bad Sec-WebSocket-Key, version or subprotocol list with 400 before asking the upstream', async () => {
    const before = up.seen.length
    for (const [headers, field] of [
      [upgradeHeaders({ 'Sec-WebSocket-Key': 'short' }), 'sec-websocket-key'],
      [upgradeHeaders({ 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=x' }), 'sec-websocket-key'],
      [upgradeHeaders({ 'Sec-WebSocket-Version': '8' }), 'sec-websocket-version'],
      [upgradeHeaders({ 'Sec-WebSocket-Protocol': 'a, a' }), 'sec-websocket-protocol'],
      [upgradeHeaders({ 'Sec-WebSocket-Protocol': 'a b' }), 'sec-websocket-protocol'],
    ] as const) {
      const r = await rawUpgrade(port, '/ws/x', headers)
      expect(r.status).toBe(400)
      expect(JSON.parse(r.body)).toMatchObject({ errorCode: 'VALIDATION_ERROR', detailed: [{ field }] })
    }
    const noVersion = await rawUpgrade(port, '/ws/x', upgradeHeaders({ 'Sec-WebSocket-Version': '8' }))
    expect(noVersion.head).toMatch(/\r\nsec-websocket-version: 13/i)
    expect(up.seen.length).toBe(before)
  })

  it('asks for auth on a protected route (401, no upgrade) and takes the token from the header, the query or a subprotocol, never passing a carried one on', async () => {
    const before = up.seen.length
    const refused = await rawUpgrade(port, '/private/x', upgradeHeaders())
    expect(refused.status).toBe(401)
    expect(JSON.parse(refused.body)).toMatchObject({ success: false, status: 401, errorCode: 'UNAUTHORIZED' })
    const bad = await rawUpgrade(port, '/private/x?access_token=nonsense', upgradeHeaders())
    expect(bad.status).toBe(401)
    expect(up.seen.length).toBe(before)

    const byHeader = await openWs(wsUrl(gw.base, '/private/h'), [], { headers: { authorization: `Bearer ${userToken}` } })
    const byQuery = await openWs(wsUrl(gw.base, `/private/q?a=1&access_token=${userToken}&b=2`))
    const bySub = await openWs(wsUrl(gw.base, '/private/s'), ['graphql-transport-ws', `bearer.${userToken}`])
    expect(bySub.ws.protocol).toBe('graphql-transport-ws')
    const [h, q, s] = up.seen.slice(before)
    expect(h!.headers.authorization).toBe(`Bearer ${userToken}`)
    expect(q!.url).toBe('/private/q?a=1&b=2')
    expect(q!.headers.authorization).toBeUndefined()
    expect(s!.headers.authorization).toBeUndefined()
    expect(s!.headers['sec-websocket-protocol']).toBe('graphql-transport-ws')
    for (const r of [byHeader, byQuery, bySub]) {
      r.ws.send('ok?')
      expect((await r.next('message')) as { data: Buffer }).toMatchObject({ data: Buffer.from('ok?') })
      r.ws.close(1000)
      await r.closed
    }
    // The token is in no log line.
    expect(JSON.stringify(sink.lines)).not.toContain(userToken)
    // The route's own message limit: 1009 to the sender.
    const small = await openWs(wsUrl(gw.base, '/private/big'), [], { headers: { authorization: `Bearer ${userToken}` } })
    small.ws.send(Buffer.alloc(5000))
    expect((await small.closed).code).toBe(1009)
  })

  it('answers 502 when the upstream refuses connections and 504 when it never completes the handshake', async () => {
    const down = await rawUpgrade(port, '/down/x', upgradeHeaders())
    expect(down.status).toBe(502)
    expect(JSON.parse(down.body)).toMatchObject({ errorCode: 'BAD_GATEWAY', message: 'Upstream down failed the WebSocket handshake after 1 attempt' })
    const t0 = Date.now()
    const silent = await rawUpgrade(port, '/silent/x', upgradeHeaders())
    expect(silent.status).toBe(504)
    expect(JSON.parse(silent.body)).toMatchObject({ errorCode: 'GATEWAY_TIMEOUT' })
    expect(Date.now() - t0).toBeLessThan(5000)
    const metrics = await call(gw.base, '/metrics')
    expect(metrics.text).toMatch(/flowgate_upstream_request_duration_seconds_count\{upstream="down",status_class="error"\} [1-9]/)
  })

  it('passes an upstream\'s HTTP answer to an upgrade on as it is (a 5xx counted as the target\'s failure), and logs every answer', async () => {
    const no = await rawUpgrade(port, '/refusing/x', upgradeHeaders())
    expect(no.status).toBe(403)
    expect(JSON.parse(no.body)).toEqual({ upstream: 'says no', status: 403 })
    expect(no.head).toMatch(/\r\nx-upstream: refusing/i)
    expect(no.head).toMatch(/\r\nx-trace-id: [0-9a-f]{32}/i)
    const failing = await rawUpgrade(port, '/refusing/fail', upgradeHeaders())
    expect(failing.status).toBe(503)
    expect(JSON.parse(failing.body)).toEqual({ upstream: 'says no', status: 503 })
    const stats = await call(gw.base, '/lb-stats', { headers: await adminHeader(nats.url) })
    const target = (stats.json().data as { upstreams: Array<{ upstream: string; targets: Array<{ failures: number; handled: number; sockets: number }> }> }).upstreams.find((u) => u.upstream === 'refusing')!.targets[0]!
    expect(target).toMatchObject({ failures: 1, handled: 2, sockets: 0 })
    const recent = await call(gw.base, '/telemetry?route=/refusing/*', { headers: await adminHeader(nats.url) })
    expect(JSON.stringify(recent.json())).toContain('"status":503')
    expect(JSON.stringify(recent.json())).toContain('"status":403')
  })

  it('rate limits upgrades like any request: a flood from one address gets 429 before any upgrade', async () => {
    const answers = []
    for (let i = 0; i < 6; i++) answers.push(await rawUpgrade(port, '/limited/x', upgradeHeaders()))
    expect(answers.map((a) => a.status)).toEqual([101, 101, 101, 429, 429, 429])
    expect(JSON.parse(answers[5]!.body)).toMatchObject({ errorCode: 'RATE_LIMITED' })
    expect(answers[5]!.head).toMatch(/\r\nretry-after: \d+/i)
    for (const a of answers) a.socket.destroy()
  })

  it('counts open sockets per target in /lb-stats and in the metrics', async () => {
    const recs = await Promise.all(Array.from({ length: 3 }, (_, i) => openWs(wsUrl(gw.base, `/ws/count${i}`))))
    const stats = await call(gw.base, '/lb-stats', { headers: await adminHeader(nats.url) })
    const echo = (stats.json().data as { upstreams: Array<{ upstream: string; targets: Array<{ sockets: number; active: number }> }> }).upstreams.find((u) => u.upstream === 'echo')!
    expect(echo.targets[0]!.sockets).toBe(3)
    expect(echo.targets[0]!.active).toBe(3)
    expect((await call(gw.base, '/metrics')).text).toMatch(/flowgate_ws_open_sockets\{upstream="echo"\} 3\n/)
    recs[0]!.ws.send('12345')
    await recs[0]!.next('message')
    recs[0]!.ws.close(4999, 'counted')
    recs[1]!.ws.close(1000)
    await Promise.all([recs[0]!.closed, recs[1]!.closed])
    await new Promise((r) => setTimeout(r, 50))
    const metrics = await call(gw.base, '/metrics')
    expect(metrics.text).toMatch(/flowgate_ws_open_sockets\{upstream="echo"\} 1\n/)
    expect(metrics.text).toMatch(/flowgate_ws_closed_total\{upstream="echo",code="4xxx",closed_by="client"\} [1-9]/)
    expect(metrics.text).toMatch(/flowgate_ws_closed_total\{upstream="echo",code="1000",closed_by="client"\} [1-9]/)
    expect(metrics.text).toMatch(/flowgate_ws_bytes_total\{upstream="echo",direction="in"\} [1-9]/)
    expect(metrics.text).toMatch(/flowgate_ws_bytes_total\{upstream="echo",direction="out"\} [1-9]/)
    expect(metrics.text).toMatch(/flowgate_http_request_duration_seconds_count\{method="GET",route="\/ws\/\*",status="101"\} [3-9]/)
    recs[2]!.ws.close()
    await recs[2]!.closed
  })
})
