// The built gateway process with a WebSocket route, its spans exported over OTLP/HTTP to a real
// receiver: a socket's life is the gateway's SERVER span (status 101, its close code) with the
// upstream handshake as its child, whose id the upstream gets in traceparent; SIGTERM closes the
// open sockets with 1001 on both sides and the process exits within its deadline.
import { existsSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KIND, startOtlpReceiver, type OtlpReceiver } from '../harness/otlp.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { CLI, freePort, runCli, tempDir, waitFor, type CliProcess } from '../harness/process.js'
import { servicesFile } from './harness.js'
import { openWs, startWsUpstream, type WsUpstream } from './ws-harness.js'

let nats: NatsServer
let receiver: OtlpReceiver
let up: WsUpstream
let gateway: CliProcess
let base = ''

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  ;[nats, receiver, up] = await Promise.all([startNats(), startOtlpReceiver(), startWsUpstream('echo')])
  const file = servicesFile({ upstreams: { echo: { targets: [{ url: up.url }] } }, routes: [{ path: '/ws/*', upstream: 'echo', auth: 'public', websocket: true }] })
  const port = await freePort()
  gateway = runCli(['gateway'], {
    NATS_URL: nats.url,
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    HOST: '127.0.0.1',
    SERVICES_FILE: file.path,
    EVENTS_ENABLED: 'false',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    JWT_SECRET: 'websocket-process-test-secret-of-32-chars',
    DATA_DIR: tempDir('ws-process'),
  })
  base = `ws://127.0.0.1:${port}`
  // The route is live when a plain GET reaches the upstream (which answers 426 to anything but an upgrade).
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/ws/probe`)).status === 426, 30_000).catch(() => {
    throw new Error(`gateway did not start:\n${gateway.output()}`)
  })
}, 60_000)

afterAll(async () => {
  if (gateway && gateway.child.exitCode === null) {
    gateway.child.kill('SIGKILL')
    await gateway.exit
  }
  await up?.stop()
  await receiver?.close()
  await nats?.stop()
})

describe('a WebSocket through the gateway process', () => {
  it('is one SERVER span for its life (101, close code) with the upstream handshake as its child', { timeout: 30_000 }, async () => {
    const traceId = '5bf92f3577b34da6a3ce929d0e0e4736'
    const rec = await openWs(`${base}/ws/traced`, [], { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } })
    rec.ws.send('hi')
    await rec.next('message')
    rec.ws.close(4000, 'done')
    await rec.closed
    await waitFor(() => receiver.trace(traceId).length >= 2, 15_000).catch(() => {
      throw new Error(`incomplete trace: ${receiver.trace(traceId).map((s) => s.name).join(', ')}`)
    })
    const spans = receiver.trace(traceId)
    const server = spans.find((s) => s.kind === KIND.server)!
    expect(server.name).toBe('GET /ws/*')
    expect(server.attributes).toMatchObject({ 'http.route': '/ws/*', 'http.response.status_code': 101, 'websocket.close_code': 4000, 'websocket.closed_by': 'client' })
    const handshake = spans.find((s) => s.name === 'GET upstream echo')!
    expect(handshake.parentSpanId).toBe(server.spanId)
    expect(up.seen.at(-1)!.headers.traceparent).toBe(`00-${traceId}-${handshake.spanId}-01`)
    expect(server.endNs - server.startNs).toBeGreaterThan(handshake.endNs - handshake.startNs)
  })

  it('closes open sockets with 1001 on both sides at SIGTERM and exits within its deadline', { timeout: 30_000 }, async () => {
    const recs = await Promise.all([openWs(`${base}/ws/a`), openWs(`${base}/ws/b`)])
    const theirs = up.sockets.slice(-2).map((s) => new Promise<number>((resolve) => s.once('close', (code: number) => resolve(code))))
    const t0 = Date.now()
    gateway.child.kill('SIGTERM')
    for (const r of recs) expect(await r.closed).toEqual({ code: 1001, reason: 'gateway shutting down' })
    expect(await Promise.all(theirs)).toEqual([1001, 1001])
    expect(await gateway.exit).toBe(0)
    expect(Date.now() - t0).toBeLessThan(10_000)
  })
})
