// Faults of the upstreams, with real HTTP servers on free ports: down at start, killed mid-traffic
// (breaker opens once, one JetStream event, closes once when it is back), never answering, closing
// mid-body, answering garbage, a POST against a failing target.
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net'
import { connect } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSubscriber } from '../../events/subscriber.js'
import { subjects } from '../../lib/subjects.js'
import { streamCount } from '../events/edge-stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort, waitFor } from '../harness/process.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { adminHeader, call, startProxyGateway, startUpstream, type ProxyGateway, type TestUpstream } from './harness.js'

let nats: NatsServer
const sink = captureLogs('info')
const cleanup: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  nats = await startNats()
})
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
  await nats?.stop()
})

async function gatewayFor(upstreams: Record<string, unknown>, routes: unknown[]): Promise<ProxyGateway> {
  const gw = await startProxyGateway(nats.url, { upstreams, routes }, sink.log)
  cleanup.push(() => gw.stop())
  return gw
}

async function upstream(name: string, ...rest: Parameters<typeof startUpstream> extends [string, ...infer R] ? R : never): Promise<TestUpstream> {
  const u = await startUpstream(name, ...rest)
  cleanup.push(() => u.stop())
  return u
}

const fast = { timeouts: { connectMs: 500, tryMs: 400, requestMs: 3000 }, retry: { backoffBaseMs: 1, backoffMaxMs: 5 } }

describe('upstream faults', () => {
  it('serves from the live target when another is down at start, and answers 502 when all are', async () => {
    const live = await upstream('live')
    const deadPort = await freePort()
    const gw = await gatewayFor(
      {
        half: { ...fast, targets: [{ url: `http://127.0.0.1:${deadPort}` }, { url: live.url }] },
        none: { ...fast, targets: [{ url: `http://127.0.0.1:${deadPort}` }] },
      },
      [
        { path: '/half/*', upstream: 'half', auth: 'public' },
        { path: '/none/*', upstream: 'none', auth: 'public' },
      ],
    )
    const answers = await Promise.all(Array.from({ length: 20 }, () => call(gw.base, '/half/x')))
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200))
    expect(answers.every((a) => a.json().instance === 'live')).toBe(true)
    const none = await call(gw.base, '/none/x')
    expect(none.status).toBe(502)
    expect(none.json()).toMatchObject({ success: false, status: 502, errorCode: 'BAD_GATEWAY', message: 'Upstream none failed after 1 attempt' })
    expect(none.text).not.toContain(String(deadPort))
  })

  it('moves traffic off a target killed mid-traffic; its breaker opens once (one event, one subscriber alert) and closes once when it returns', async () => {
    const a = await upstream('a')
    const b = await upstream('b')
    const c = await upstream('c')
    const gw = await gatewayFor(
      {
        trio: {
          ...fast,
          targets: [{ url: a.url }, { url: b.url }, { url: c.url }],
          breaker: { volumeThreshold: 3, errorThresholdPercent: 50, resetTimeoutMs: 300, windowMs: 300 },
          outlier: { consecutiveFailures: 1000 },
          // Ten requests in flight, a third of them on the target that dies: the default floor of 3
          // concurrent retries (Envoy's) would let one or two of them fail.
          retry: { ...fast.retry, minRetryConcurrency: 10 },
        },
      },
      [{ path: '/trio/*', upstream: 'trio', auth: 'public' }],
    )
    const openedSubject = subjects.gatewayEvent('circuit.opened')
    const closedSubject = subjects.gatewayEvent('circuit.closed')
    // The subscriber turns the opening into its alert, as it runs beside the gateway.
    const subNc = await connect({ servers: nats.url })
    const subscriber = createSubscriber(subNc, testConfig(nats.url), { log: sink.log })
    cleanup.push(async () => {
      await subscriber.close()
      await subNc.close()
    })
    await subscriber.started()
    const alerts: Array<{ kind: string; details: Record<string, unknown> }> = []
    subNc.subscribe(subjects.alert('circuit_opened'), { callback: (_e, m) => alerts.push(m.json()) })
    const statuses: number[] = []
    let stop = false
    const traffic = (async () => {
      while (!stop) statuses.push(...(await Promise.all(Array.from({ length: 10 }, () => call(gw.base, '/trio/x').then((r) => r.status)))))
    })()
    await waitFor(() => statuses.length > 50)
    await b.kill()
    const admin = await adminHeader(nats.url)
    const breakerOf = async () => {
      const stats = (await call(gw.base, '/cb-stats', { headers: admin })).json() as { data: { upstreams: Array<{ targets: Array<{ url: string; state: string }> }> } }
      return stats.data.upstreams[0]!.targets.find((t) => t.url === b.url)!.state
    }
    await waitFor(async () => (await breakerOf()) !== 'closed')
    const duringOutage = statuses.length
    await waitFor(() => statuses.length > duringOutage + 100)
    await b.restart()
    await waitFor(async () => (await breakerOf()) === 'closed', 10_000)
    const afterReturn = b.seen.length
    await waitFor(() => b.seen.length > afterReturn + 5)
    stop = true
    await traffic
    // GETs were retried on the others: every request answered 200.
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    await waitFor(async () => (await streamCount(gw.edge.nc, closedSubject)) === 1, 5000)
    expect(await streamCount(gw.edge.nc, openedSubject)).toBe(1)
    expect(await streamCount(gw.edge.nc, closedSubject)).toBe(1)
    await waitFor(() => alerts.length > 0)
    expect(alerts).toHaveLength(1)
    expect(alerts[0]).toMatchObject({ kind: 'circuit_opened', details: { upstream: `trio ${b.url}` } })
    const opened = sink.lines.filter((l) => l.msg === 'circuit opened')
    expect(opened).toHaveLength(1)
    expect(opened[0]).toMatchObject({ upstream: 'trio', target: b.url })
  }, 60_000)

  it('times out a target that accepts and never answers: a GET is retried on another, a lone target answers 504', async () => {
    const hung = await upstream('hung', () => {}) // reads the request, never answers
    const ok = await upstream('ok')
    const gw = await gatewayFor(
      {
        pair: { ...fast, balancer: 'round-robin', targets: [{ url: hung.url }, { url: ok.url }] },
        lone: { ...fast, targets: [{ url: hung.url }] },
      },
      [
        { path: '/pair/*', upstream: 'pair', auth: 'public' },
        { path: '/lone/*', upstream: 'lone', auth: 'public' },
      ],
    )
    const started = Date.now()
    const both = await Promise.all([call(gw.base, '/pair/1'), call(gw.base, '/pair/2')])
    expect(both.map((r) => r.status)).toEqual([200, 200])
    expect(both.every((r) => r.json().instance === 'ok')).toBe(true)
    const lone = await call(gw.base, '/lone/1')
    expect(lone.status).toBe(504)
    expect(lone.json()).toMatchObject({ errorCode: 'GATEWAY_TIMEOUT' })
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('cuts the client off when the upstream closes mid-body, and keeps serving', async () => {
    const half = await upstream('half', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' })
      res.write('x'.repeat(100))
      setTimeout(() => res.socket?.destroy(), 20)
    })
    const gw = await gatewayFor({ half: { ...fast, targets: [{ url: half.url }] } }, [{ path: '/half/*', upstream: 'half', auth: 'public' }])
    const res = await fetch(`${gw.base}/half/x`)
    expect(res.status).toBe(200)
    await expect(res.text()).rejects.toThrow()
    await waitFor(() => sink.lines.some((l) => l.msg === 'upstream answer broke off'))
    expect((await call(gw.base, '/health')).status).toBe(200)
  })

  it('answers 502 for garbage bytes instead of HTTP', async () => {
    const port = await freePort()
    const garbage: TcpServer = createTcpServer((s) => {
      s.on('data', () => s.end('\u0000\u0001 this is not HTTP at all \r\n\r\n'))
    })
    await new Promise<void>((r) => garbage.listen(port, '127.0.0.1', r))
    cleanup.push(() => new Promise((r) => garbage.close(r)))
    const gw = await gatewayFor({ junk: { ...fast, targets: [{ url: `http://127.0.0.1:${port}` }] } }, [{ path: '/junk/*', upstream: 'junk', auth: 'public' }])
    const res = await call(gw.base, '/junk/x')
    expect(res.status).toBe(502)
    expect(res.json()).toMatchObject({ errorCode: 'BAD_GATEWAY' })
  })

  it('never retries a POST against a failing target (the upstream sees it once); a GET it retries', async () => {
    const failing = await upstream('failing', (_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' })
      res.end('busy')
    })
    const other = await upstream('other')
    const gw = await gatewayFor(
      { svc: { ...fast, balancer: 'round-robin', targets: [{ url: failing.url }, { url: other.url }], breaker: { enabled: false } } },
      [{ path: '/svc/*', upstream: 'svc', auth: 'public' }],
    )
    const results = await Promise.all([call(gw.base, '/svc/a', { method: 'POST', body: 'one' }), call(gw.base, '/svc/b', { method: 'POST', body: 'two' })])
    const posts = failing.seen.filter((s) => s.method === 'POST')
    expect(posts).toHaveLength(1)
    // The failing target's own answer passes through as it is.
    expect(results.map((r) => r.status).sort()).toEqual([200, 503])
    expect(results.find((r) => r.status === 503)!.text).toBe('busy')
    const gets = await Promise.all(Array.from({ length: 6 }, () => call(gw.base, '/svc/g')))
    expect(gets.map((g) => g.status)).toEqual(Array(6).fill(200))
  })
})
