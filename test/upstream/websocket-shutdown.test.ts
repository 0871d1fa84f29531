// WebSockets on the gateway's own HTTP server (as server/main.ts runs it): an upgrade before the app
// is ready gets the 503 envelope, a socket outlives HTTP_REQUEST_TIMEOUT_MS, and closing the gateway
// sends 1001 (going away) to both sides and finishes within its deadline.
import { connect, type NatsConnection } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createTokenService } from '../../lib/auth.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { buildGateway, type Gateway } from '../../server/gateway.js'
import { createGatewayHttpServer, type GatewayHttpServer } from '../../server/http-server.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort } from '../harness/process.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { servicesFile } from './harness.js'
import { openWs, rawUpgrade, startWsUpstream, upgradeHeaders, type WsUpstream } from './ws-harness.js'

let nats: NatsServer
let nc: NatsConnection
let http: GatewayHttpServer
let gateway: Gateway | undefined
let up: WsUpstream
let port: number
const logs = captureLogs('info')

beforeAll(async () => {
  nats = await startNats()
  nc = await connect({ servers: nats.url })
  up = await startWsUpstream('echo')
  port = await freePort()
})
afterAll(async () => {
  await gateway?.close()
  await http?.close()
  await up?.stop()
  await nc?.close()
  await nats?.stop()
})

describe('WebSockets on the gateway server', () => {
  it('refuses an upgrade with 503 until ready, keeps sockets past the request timeout, and closes them with 1001 on shutdown', async () => {
    const file = servicesFile({ upstreams: { echo: { targets: [{ url: up.url }] } }, routes: [{ path: '/ws/*', upstream: 'echo', auth: 'public', websocket: true }] })
    const config = testConfig(nats.url, { servicesFile: file.path, httpRequestTimeoutMs: 1000, rateLimitEnabled: false, eventsEnabled: false })
    http = createGatewayHttpServer({ requestTimeoutMs: config.httpRequestTimeoutMs, log: logs.log })
    await http.listen(port, '127.0.0.1')
    const early = await rawUpgrade(port, '/ws/x', upgradeHeaders())
    expect(early.status).toBe(503)
    expect(JSON.parse(early.body)).toMatchObject({ errorCode: 'SERVICE_UNAVAILABLE' })

    gateway = await buildGateway(config, { nats: nc, log: logs.log, tokens: createTokenService(config), tracing: disabledTracing, registry: new Registry(), http })
    await gateway.app.ready()
    http.activate()
    const recs = await Promise.all(Array.from({ length: 3 }, () => openWs(`ws://127.0.0.1:${port}/ws/x`)))
    // Longer than HTTP_REQUEST_TIMEOUT_MS: an open socket is not a slow request.
    await new Promise((r) => setTimeout(r, 2500))
    recs[0]!.ws.send('still open')
    expect(await recs[0]!.next('message')).toMatchObject({ data: Buffer.from('still open') })

    const upstreamSides = up.sockets.slice(-3)
    const upstreamCodes = upstreamSides.map((s) => new Promise<number>((resolve) => s.once('close', (code: number) => resolve(code))))
    const t0 = Date.now()
    await gateway.close()
    gateway = undefined
    expect(Date.now() - t0).toBeLessThan(config.shutdownTimeoutMs)
    for (const r of recs) expect(await r.closed).toEqual({ code: 1001, reason: 'gateway shutting down' })
    expect(await Promise.all(upstreamCodes)).toEqual([1001, 1001, 1001])
    expect(upstreamSides.every((s) => s.readyState === WebSocket.CLOSED)).toBe(true)
  })
})
