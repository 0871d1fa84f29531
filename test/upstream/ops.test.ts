// What operators see and set on proxy routes: /lb-stats, /cb-stats and /telemetry (admin only),
// Prometheus metrics with bounded labels, a route's own rate limit, the optional `_meta` wrapping,
// and the active health check taking a failing target out and back in.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNats, type NatsServer } from '../harness/nats.js'
import { waitFor } from '../harness/process.js'
import { captureLogs } from '../harness/stack.js'
import { adminHeader, call, startProxyGateway, startUpstream, type ProxyGateway, type TestUpstream } from './harness.js'

let nats: NatsServer
let a: TestUpstream
let b: TestUpstream
let gw: ProxyGateway
let admin: Record<string, string>
let bHealthy = true
const sink = captureLogs('warn')

beforeAll(async () => {
  nats = await startNats()
  a = await startUpstream('a')
  b = await startUpstream('b', (req, res, body) => {
    if (req.url === '/healthz') {
      res.writeHead(bHealthy ? 200 : 500)
      return void res.end()
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ instance: 'b', url: req.url, bytes: body.length }))
  })
  gw = await startProxyGateway(
    nats.url,
    {
      upstreams: {
        pair: { targets: [{ url: a.url }, { url: b.url }], balancer: 'round-robin', healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 200, unhealthyThreshold: 2, healthyThreshold: 2 } },
      },
      routes: [
        { path: '/pair/*', upstream: 'pair', auth: 'public' },
        { path: '/limited/*', upstream: 'pair', auth: 'public', rateLimit: { capacity: 2, refillPerSec: 0.01 } },
        { path: '/meta/*', upstream: 'pair', auth: 'public', meta: true },
      ],
    },
    sink.log,
    { rateLimitEnabled: true, rateLimitCapacity: 1000, rateLimitRefillPerSec: 1000 },
  )
  admin = await adminHeader(nats.url)
})

afterAll(async () => {
  await gw?.stop()
  await a?.stop()
  await b?.stop()
  await nats?.stop()
})

type Lb = { data: { upstreams: Array<{ upstream: string; balancer: string; targets: Array<{ url: string; handled: number; healthy: boolean; breaker: string; ewmaMs: number; active: number; ejected: boolean }> }> } }

describe('proxy ops', () => {
  it('/lb-stats shows each target: handled, active, failures, ejected, EWMA, health, breaker (admin only)', async () => {
    for (let i = 0; i < 4; i++) await call(gw.base, '/pair/x')
    expect((await call(gw.base, '/lb-stats')).status).toBe(401)
    const res = await call(gw.base, '/lb-stats', { headers: admin })
    expect(res.status).toBe(200)
    const u = (res.json() as unknown as Lb).data.upstreams[0]!
    expect(u).toMatchObject({ upstream: 'pair', balancer: 'round-robin' })
    expect(u.targets.map((t) => t.url)).toEqual([a.url, b.url])
    expect(u.targets.every((t) => t.handled >= 2 && t.active === 0 && t.breaker === 'closed' && t.healthy && !t.ejected && t.ewmaMs > 0)).toBe(true)
  })

  it('/cb-stats shows each breaker and its counts', async () => {
    const res = await call(gw.base, '/cb-stats', { headers: admin })
    const u = (res.json() as { data: { upstreams: Array<{ settings: { errorThresholdPercent: number }; targets: Array<{ url: string; state: string; fires: number; failures: number }> }> } }).data.upstreams[0]!
    expect(u.settings.errorThresholdPercent).toBe(50)
    expect(u.targets.map((t) => [t.url, t.state])).toEqual([
      [a.url, 'closed'],
      [b.url, 'closed'],
    ])
    expect(u.targets[0]!.fires).toBeGreaterThan(0)
  })

  it('/telemetry lists the last requests with route template, status, latency, client and upstream target', async () => {
    await call(gw.base, '/pair/some/raw/path?secret=1')
    const res = await call(gw.base, '/telemetry?limit=5&route=/pair/*', { headers: admin })
    expect(res.status).toBe(200)
    const data = res.json().data as { capacity: number; requests: Array<Record<string, unknown>> }
    expect(data.capacity).toBe(1000)
    expect(data.requests[0]).toMatchObject({ method: 'GET', route: '/pair/*', status: 200, client: '127.0.0.1' })
    expect(String(data.requests[0]!.upstream)).toMatch(/^pair http:\/\/127\.0\.0\.1:\d+$/)
    expect(typeof data.requests[0]!.durationMs).toBe('number')
    expect(JSON.stringify(data)).not.toContain('secret=1')
    expect((await call(gw.base, '/telemetry?limit=100000', { headers: admin })).status).toBe(400)
  })

  it('exports upstream metrics with bounded labels', async () => {
    const text = await (await fetch(`${gw.base}/metrics`)).text()
    expect(text).toMatch(/flowgate_upstream_request_duration_seconds_count\{upstream="pair",status_class="2xx"\} \d+/)
    expect(text).toContain(`flowgate_upstream_circuit_state{upstream="pair",target="${a.url}"} 0`)
    expect(text).toMatch(/flowgate_http_request_duration_seconds_count\{method="GET",route="\/pair\/\*",status="200"\}/)
    expect(text).not.toContain('/pair/some/raw/path')
  })

  it("applies a proxy route's own rate limit", async () => {
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await call(gw.base, '/limited/x')).status)
    expect(statuses).toEqual([200, 200, 429])
    const refused = await call(gw.base, '/limited/x')
    expect(refused.json()).toMatchObject({ errorCode: 'RATE_LIMITED' })
    expect(refused.headers.get('ratelimit-limit')).toBe('2')
    expect((await call(gw.base, '/pair/x')).status).toBe(200)
  })

  it('wraps a JSON object answer with _meta when the route asks for it', async () => {
    const res = await call(gw.base, '/meta/x')
    const body = res.json()
    expect(body).toMatchObject({ url: '/meta/x', _meta: { upstream: 'pair', attempts: 1 } })
    expect((body._meta as { traceId: string }).traceId).toBe(res.headers.get('x-trace-id'))
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(res.text))
    expect((await call(gw.base, '/pair/x')).json()._meta).toBeUndefined()
  })

  it('takes a target failing its health check out, and back in when it passes again', async () => {
    bHealthy = false
    const lb = async () => ((await call(gw.base, '/lb-stats', { headers: admin })).json() as unknown as Lb).data.upstreams[0]!.targets[1]!
    await waitFor(async () => !(await lb()).healthy, 3000)
    const answers = await Promise.all(Array.from({ length: 6 }, () => call(gw.base, '/pair/x')))
    expect(answers.map((r) => r.json().instance)).toEqual(Array(6).fill('a'))
    bHealthy = true
    await waitFor(async () => (await lb()).healthy, 3000)
    const again = await Promise.all(Array.from({ length: 6 }, () => call(gw.base, '/pair/x')))
    expect(new Set(again.map((r) => r.json().instance))).toEqual(new Set(['a', 'b']))
  })
})
