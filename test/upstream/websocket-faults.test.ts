// WebSocket proxying under bad input and faults, with real `ws` servers on free ports: socket caps
// per client and per gateway, a 100 MB frame, a client that never reads, a target killed with 100
// sockets open, a half-open connection, and the completion event on the bus.
import type { Socket } from 'node:net'
import { connect, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createTokenService } from '../../lib/auth.js'
import { createBlocklistStore } from '../../lib/blocklist.js'
import { subjects } from '../../lib/subjects.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { waitFor } from '../events/edge-stack.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { adminHeader, call, startProxyGateway, type ProxyGateway } from './harness.js'
import { openWs, rawExchange, rawUpgrade, startWsUpstream, upgradeHeaders, wsUrl, type WsUpstream } from './ws-harness.js'

let nats: NatsServer
let nc: NatsConnection
let gw: ProxyGateway
let port: number
let a: WsUpstream
let b: WsUpstream
let stream: WsUpstream
const sink = captureLogs('info')
const cleanup: Array<() => Promise<unknown>> = []
const tokenFor = (sub: string) => createTokenService(testConfig(nats.url)).sign({ sub, role: 'customer' }).token

/** 4 MiB streamed per burst to a client that may not read. */
const CHUNK = 64 * 1024

beforeAll(async () => {
  nats = await startNats()
  nc = await connect({ servers: nats.url })
  a = await startWsUpstream('a')
  b = await startWsUpstream('b')
  // Streams 64 KiB messages for as long as the socket is open, as fast as its own buffer allows.
  stream = await startWsUpstream('stream', (ws) => {
    const chunk = Buffer.alloc(CHUNK, 1)
    const pump = () => {
      while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 64 * 1024 * 1024) ws.send(chunk)
      if (ws.readyState === WebSocket.OPEN) setTimeout(pump, 5)
    }
    ws.on('message', () => pump())
  })
  cleanup.push(() => a.stop(), () => b.stop(), () => stream.stop())
  gw = await startProxyGateway(
    nats.url,
    {
      upstreams: {
        pair: { balancer: 'least-connections', targets: [{ url: a.url }, { url: b.url }], timeouts: { connectMs: 300, tryMs: 500 }, retry: { retries: 1 } },
        stream: { targets: [{ url: stream.url }] },
      },
      routes: [
        { path: '/pair/*', upstream: 'pair', auth: 'public', websocket: true },
        { path: '/user/*', upstream: 'pair', auth: 'authenticated', websocket: true },
        { path: '/idle/*', upstream: 'pair', auth: 'public', websocket: { idleTimeoutMs: 1000 } },
        { path: '/stream/*', upstream: 'stream', auth: 'public', websocket: true },
      ],
    },
    sink.log,
    { wsMaxSockets: 130, wsMaxSocketsPerClient: 110, wsMaxMessageBytes: 1024 * 1024, eventsEnabled: true, blocklistEnabled: true },
  )
  cleanup.push(() => gw.stop())
  port = Number(new URL(gw.base).port)
})
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
  await nc?.close()
  await nats?.stop()
})

async function metric(re: RegExp): Promise<number> {
  const m = re.exec((await call(gw.base, '/metrics')).text)
  return m ? Number(m[1]) : 0
}

/** A masked client frame header for a binary frame declaring `length` bytes. */
function frameHeader(length: number): Buffer {
  const head = Buffer.alloc(14)
  head[0] = 0x82
  head[1] = 0x80 | 127
  head.writeBigUInt64BE(BigInt(length), 2)
  head.writeUInt32BE(0x01020304, 10)
  return head
}

/** A raw socket already upgraded (the 101 read), and what arrives on it after. */
async function upgradedSocket(path: string): Promise<{ socket: Socket; received: Buffer[]; ended: Promise<void> }> {
  const r = await rawUpgrade(port, path, upgradeHeaders())
  expect(r.status).toBe(101)
  const received: Buffer[] = r.body.length > 0 ? [Buffer.from(r.body, 'latin1')] : []
  r.socket.on('data', (c: Buffer) => received.push(c))
  const ended = new Promise<void>((resolve) => r.socket.once('close', () => resolve()))
  return { socket: r.socket, received, ended }
}

/** The close code and reason of the first close frame (server frames are unmasked) in what arrived. */
function closeFrame(bytes: Buffer): { code: number; reason: string } | undefined {
  let i = 0
  while (i + 2 <= bytes.length) {
    const op = bytes[i]! & 0x0f
    let len = bytes[i + 1]! & 0x7f
    let at = i + 2
    if (len === 126) {
      len = bytes.readUInt16BE(at)
      at += 2
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(at))
      at += 8
    }
    if (op === 0x8) return { code: bytes.readUInt16BE(at), reason: bytes.subarray(at + 2, at + len).toString() }
    i = at + len
  }
  return undefined
}

describe('WebSocket limits and faults', () => {
  it('caps open sockets per client (429 before upgrade) and per gateway (503)', async () => {
    const t1 = tokenFor('capped-one')
    const t2 = tokenFor('capped-two')
    const mine = await Promise.all(Array.from({ length: 110 }, () => openWs(wsUrl(gw.base, '/user/x'), [], { headers: { authorization: `Bearer ${t1}` } })))
    const over = await rawUpgrade(port, '/user/x', upgradeHeaders({ Authorization: `Bearer ${t1}` }))
    expect(over.status).toBe(429)
    expect(JSON.parse(over.body)).toMatchObject({ errorCode: 'RATE_LIMITED', message: 'At most 110 open WebSockets per client' })
    // Another subject still gets in, up to the gateway's 130.
    const theirs = await Promise.all(Array.from({ length: 20 }, () => openWs(wsUrl(gw.base, '/user/x'), [], { headers: { authorization: `Bearer ${t2}` } })))
    const full = await rawUpgrade(port, '/user/x', upgradeHeaders({ Authorization: `Bearer ${t2}` }))
    expect(full.status).toBe(503)
    expect(JSON.parse(full.body)).toMatchObject({ errorCode: 'SERVICE_UNAVAILABLE', message: 'Too many open WebSockets on this gateway' })
    // Least connections spread them: an open socket is an active connection of its target.
    expect(Math.abs(a.open() - b.open())).toBeLessThanOrEqual(1)
    for (const r of [...mine, ...theirs]) r.ws.close()
    await Promise.all([...mine, ...theirs].map((r) => r.closed))
    await waitFor('places given back', () => gw.gateway.websockets.registry.size, (n) => n === 0, 5000)
    const again = await openWs(wsUrl(gw.base, '/user/x'), [], { headers: { authorization: `Bearer ${t1}` } })
    again.ws.close()
    await again.closed
  })

  it('closes a 100 MB frame with 1009 as soon as its header arrives, and the upstream side too', async () => {
    const before = a.sockets.length + b.sockets.length
    const { socket, received, ended } = await upgradedSocket('/pair/big')
    const heapBefore = process.memoryUsage().heapUsed
    socket.write(frameHeader(100 * 1024 * 1024))
    let written = 14
    const mb = Buffer.alloc(1024 * 1024)
    socket.on('error', () => {})
    while (!socket.destroyed && written < 100 * 1024 * 1024 && closeFrame(Buffer.concat(received)) === undefined) {
      socket.write(mb)
      written += mb.length
      await new Promise((r) => setTimeout(r, 5))
    }
    await ended
    expect(closeFrame(Buffer.concat(received))).toEqual({ code: 1009, reason: '' })
    expect(written).toBeLessThan(20 * 1024 * 1024)
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(50 * 1024 * 1024)
    const upstreamSide = [...a.sockets, ...b.sockets].slice(before)[0]!
    await waitFor('upstream side closed', () => upstreamSide.readyState, (s) => s === WebSocket.CLOSED, 3000)
    expect(await metric(/flowgate_ws_closed_total\{upstream="pair",code="1009",closed_by="client"\} (\d+)/)).toBeGreaterThanOrEqual(1)
  })

  it('stops reading the upstream while a client does not read: the gateway holds a bounded number of bytes', async () => {
    const rec = await openWs(wsUrl(gw.base, '/stream/x'))
    rec.ws.send('go')
    await rec.next('message')
    rec.ws.pause()
    const theirs = stream.sockets.at(-1)!
    // The upstream is held back: its own buffer grows while the gateway's stays near the high-water mark.
    await waitFor('upstream held back', () => theirs.bufferedAmount, (n) => n > 32 * 1024 * 1024, 10_000, 50)
    const held = gw.gateway.websockets.registry.bufferedBytes()
    expect(held).toBeLessThan(4 * 1024 * 1024)
    expect(await metric(/flowgate_ws_buffered_bytes (\d+)/)).toBeLessThan(4 * 1024 * 1024)
    // Reading again takes the stream up where it stopped.
    const got = rec.events.length
    rec.ws.resume()
    await waitFor('stream flows again', () => rec.events.length, (n) => n > got + 100, 10_000)
    rec.ws.terminate()
    await waitFor('upstream side closed', () => theirs.readyState, (s) => s === WebSocket.CLOSED, 5000)
  })

  it('closes the clients of a killed target with 1011 promptly, counts it, and opens the next sockets on the live one', async () => {
    const recs = await Promise.all(Array.from({ length: 100 }, (_, i) => openWs(wsUrl(gw.base, `/pair/k${i}`))))
    expect(a.open() + b.open()).toBe(100)
    const onA = a.open()
    expect(onA).toBe(50)
    const lostBefore = await metric(/flowgate_ws_closed_total\{upstream="pair",code="1006",closed_by="upstream"\} (\d+)/)
    const t0 = Date.now()
    await a.kill()
    const closes = await waitFor('the killed target\'s clients closed', () => recs.filter((r) => r.events.some((e) => e.kind === 'close')), (c) => c.length === onA, 10_000)
    expect(Date.now() - t0).toBeLessThan(5000)
    for (const r of closes) expect(await r.closed).toEqual({ code: 1011, reason: 'upstream connection lost' })
    expect(await metric(/flowgate_ws_closed_total\{upstream="pair",code="1006",closed_by="upstream"\} (\d+)/)).toBe(lostBefore + onA)
    const stats = await call(gw.base, '/lb-stats', { headers: await adminHeader(nats.url) })
    const pair = (stats.json().data as { upstreams: Array<{ upstream: string; targets: Array<{ url: string; sockets: number; failures: number }> }> }).upstreams.find((u) => u.upstream === 'pair')!
    expect(pair.targets.find((t) => t.url === a.url)).toMatchObject({ sockets: 0 })
    expect(pair.targets.find((t) => t.url === a.url)!.failures).toBeGreaterThanOrEqual(onA)
    // The sockets on the live target still work; new ones go there.
    const live = recs.find((r) => !closes.includes(r))!
    live.ws.send('still here')
    expect(await live.next('message')).toMatchObject({ data: Buffer.from('still here') })
    const next = await Promise.all(Array.from({ length: 5 }, () => openWs(wsUrl(gw.base, '/pair/after'))))
    expect(b.open()).toBe(100 - onA + 5)
    for (const r of [...recs, ...next]) r.ws.close()
    await Promise.all([...recs, ...next].map((r) => r.closed))
    await a.restart()
  })

  it('closes a half-open connection at the idle timeout: 1001 to both sides, its TCP connection cut', async () => {
    const before = a.sockets.length + b.sockets.length
    const t0 = Date.now()
    const { received, ended } = await upgradedSocket('/idle/x')
    const upstreamSide = [...a.sockets, ...b.sockets].slice(before)[0]!
    const upstreamClosed = new Promise<number>((resolve) => upstreamSide.once('close', (code: number) => resolve(code)))
    // The raw client sends nothing and never answers the close frame.
    await ended
    expect(closeFrame(Buffer.concat(received))).toEqual({ code: 1001, reason: 'idle timeout' })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(await upstreamClosed).toBe(1001)
    expect(await metric(/flowgate_ws_closed_total\{upstream="pair",code="1001",closed_by="gateway"\} (\d+)/)).toBeGreaterThanOrEqual(1)
  })

  it('publishes gateway.request.completed with status 101 and the socket duration when it closes', async () => {
    const sub = nc.subscribe(subjects.gatewayEvent('request.completed'))
    const rec = await openWs(wsUrl(gw.base, '/pair/event'), [], { headers: { 'x-request-id': 'ws-event-1' } })
    await new Promise((r) => setTimeout(r, 200))
    rec.ws.close(1000)
    await rec.closed
    const event = await (async () => {
      for await (const m of sub) {
        const e = m.json<{ requestId: string; status: number; latencyMs: number; route: string; method: string }>()
        if (e.requestId === 'ws-event-1') return e
      }
      return undefined
    })()
    sub.unsubscribe()
    expect(event).toMatchObject({ requestId: 'ws-event-1', status: 101, method: 'GET', route: '/pair/*' })
    expect(event!.latencyMs).toBeGreaterThanOrEqual(150)
    const recent = await call(gw.base, '/telemetry?route=/pair/*', { headers: await adminHeader(nats.url) })
    expect(JSON.stringify(recent.json())).toContain('"status":101')
  })

  it('keeps every bad upgrade a plain answer: no crash, no hang, nothing leaked', async () => {
    for (const headers of [
      upgradeHeaders({ 'Sec-WebSocket-Protocol': 'x'.repeat(5000) }),
      upgradeHeaders({ 'Sec-WebSocket-Protocol': Array.from({ length: 40 }, (_, i) => `p${i}`).join(',') }),
      upgradeHeaders({ 'Sec-WebSocket-Key': '__proto__' }),
      upgradeHeaders({ Upgrade: 'WebSocket, h2c' }),
    ]) {
      const r = await rawUpgrade(port, '/pair/x', headers)
      expect([101, 400]).toContain(r.status)
      r.socket.destroy()
    }
    // A fragment in the request target reaches the gateway; the ws client refuses such a URL: 502, no crash.
    const fragment = await rawUpgrade(port, '/pair/a#b', upgradeHeaders())
    expect([400, 502]).toContain(fragment.status)
    expect(JSON.parse(fragment.body)).toMatchObject({ success: false })
    for (const path of ['/pair/%2e%2e/admin', '/pair/a%00b', '/pair//x', '/pair/..;/x']) {
      const r = await rawUpgrade(port, path, upgradeHeaders())
      expect(r.status, path).toBe(400)
      expect(r.body).not.toContain(' at ')
    }
    // An upgrade to another protocol is served as plain HTTP (the upstream answers it).
    const h2c = await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n')
    expect(h2c).toMatch(/^HTTP\/1.1 200 /)
  })

  // Last: it blocks the test's own address on this gateway.
  it('refuses an upgrade from a blocked address with 403 IP_BLOCKED, no upgrade', async () => {
    const now = Date.now()
    await createBlocklistStore(nc, testConfig(nats.url)).block({ address: '127.0.0.1', reason: 'manual', blockedAt: now, expiresAt: now + 60_000 })
    // The block reaches the gateway through the KV watch: wait for it with plain requests (which
    // never reach an upstream), so that the one upgrade below is the one refused.
    await waitFor('blocked', () => rawExchange(port, 'GET /no/such/route HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), (r) => r.startsWith('HTTP/1.1 403 '), 5000)
    const before = a.seen.length + b.seen.length
    const refused = await rawUpgrade(port, '/pair/x', upgradeHeaders())
    expect(refused.status).toBe(403)
    expect(JSON.parse(refused.body)).toMatchObject({ errorCode: 'IP_BLOCKED' })
    expect(refused.head).toMatch(/\r\nretry-after: \d+/i)
    expect(a.seen.length + b.seen.length).toBe(before)
  })
})
