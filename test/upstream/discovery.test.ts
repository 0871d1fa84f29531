// Targets from discovery sources: the NATS KV registry (`flowgate upstream register`, seen by every
// gateway, gone at its TTL or when deregistered, rogue values ignored) and Consul's health API,
// served here by a stand-in HTTP server that answers GET /v1/health/service/<name> as Consul
// documents it (passing filter, X-Consul-Index, blocking queries with index and wait). No Consul
// server can be installed on this machine; the stand-in is what the test talks to.
import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openServicesBucket } from '../../lib/service-registry.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort, runCli, waitFor } from '../harness/process.js'
import { captureLogs } from '../harness/stack.js'
import { call, startProxyGateway, startUpstream, type ProxyGateway, type TestUpstream } from './harness.js'

let nats: NatsServer
let a: TestUpstream
let b: TestUpstream
const sink = captureLogs('info')
const cleanup: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  nats = await startNats()
  a = await startUpstream('a')
  b = await startUpstream('b')
})
afterAll(async () => {
  for (const c of cleanup.reverse()) await c()
  await a?.stop()
  await b?.stop()
  await nats?.stop()
})

const instanceOf = async (gw: ProxyGateway, path: string) => {
  const r = await call(gw.base, path)
  return r.status === 200 ? (r.json().instance as string) : r.status
}

describe('NATS KV registry', () => {
  it('serves an instance registered with `flowgate upstream register` on every gateway, until it stops renewing or deregisters', async () => {
    const doc = { upstreams: { catalog: { discover: { kv: 'catalog' } } }, routes: [{ path: '/catalog/*', upstream: 'catalog', auth: 'public' }] }
    const gw1 = await startProxyGateway(nats.url, doc, sink.log, { servicesKvEnabled: true })
    const gw2 = await startProxyGateway(nats.url, doc, sink.log, { servicesKvEnabled: true })
    cleanup.push(() => gw1.stop(), () => gw2.stop())
    const empty = await call(gw1.base, '/catalog/x')
    expect(empty.status).toBe(503)
    expect(empty.json()).toMatchObject({ errorCode: 'SERVICE_UNAVAILABLE', message: 'No healthy target for upstream catalog' })

    const env = { NATS_URL: nats.url, LOG_LEVEL: 'warn', NODE_ENV: 'test' }
    const cli = runCli(['upstream', 'register', 'catalog', a.url, '--ttl', '3'], env)
    await waitFor(() => cli.output().includes('registered'), 10_000)
    await waitFor(async () => (await instanceOf(gw1, '/catalog/x')) === 'a', 3000)
    await waitFor(async () => (await instanceOf(gw2, '/catalog/x')) === 'a', 3000)

    // A crashed instance (no deregistration) disappears at its TTL.
    cli.child.kill('SIGKILL')
    await cli.exit
    const killedAt = Date.now()
    await waitFor(async () => (await instanceOf(gw1, '/catalog/x')) === 503, 8000)
    expect(Date.now() - killedAt).toBeLessThan(6000)

    // A stopped one deregisters at once.
    const again = runCli(['upstream', 'register', 'catalog', b.url, '--weight', '2'], env)
    await waitFor(async () => (await instanceOf(gw2, '/catalog/x')) === 'b', 10_000)
    again.child.kill('SIGTERM')
    expect(await again.exit).toBe(0)
    expect(again.output()).toContain('deregistered')
    await waitFor(async () => (await instanceOf(gw2, '/catalog/x')) === 503, 3000)
  }, 60_000)

  it('ignores rogue values: malformed, naming another service, credentials in the URL, a non-HTTP scheme', async () => {
    const doc = { upstreams: { shop: { discover: { kv: 'shop' } } }, routes: [{ path: '/shop/*', upstream: 'shop', auth: 'public' }] }
    const gw = await startProxyGateway(nats.url, doc, sink.log, { servicesKvEnabled: true })
    cleanup.push(() => gw.stop())
    const kv = await openServicesBucket(gw.edge.nc)
    const later = Date.now() + 60_000
    await kv.put('shop.junk', 'not json')
    await kv.put('shop.other', JSON.stringify({ v: 1, service: 'catalog', url: a.url, weight: 1, registeredAt: 0, expiresAt: later }))
    await kv.put('shop.creds', JSON.stringify({ v: 1, service: 'shop', url: 'http://u:p@127.0.0.1:1', weight: 1, registeredAt: 0, expiresAt: later }))
    await kv.put('shop.ftp', JSON.stringify({ v: 1, service: 'shop', url: 'ftp://127.0.0.1:1', weight: 1, registeredAt: 0, expiresAt: later }))
    await kv.put('shop.good', JSON.stringify({ v: 1, service: 'shop', url: b.url, weight: 1, registeredAt: 0, expiresAt: later }))
    await waitFor(async () => (await instanceOf(gw, '/shop/x')) === 'b', 5000)
    const answers = await Promise.all(Array.from({ length: 6 }, () => instanceOf(gw, '/shop/x')))
    expect(answers).toEqual(Array(6).fill('b'))
    expect(sink.lines.filter((l) => l.msg === 'service registration ignored').map((l) => l.key)).toEqual(expect.arrayContaining(['shop.junk', 'shop.other', 'shop.creds', 'shop.ftp']))
    await kv.delete('shop.good')
  })
})

describe('Consul health API (stand-in server)', () => {
  let consul: Server
  let port = 0
  let index = 7
  const queries: string[] = []
  const entries = new Map<string, { address: string; port: number; status: 'passing' | 'critical'; weight: number }>()
  const waiting = new Set<() => void>()
  const bump = () => {
    index++
    for (const w of waiting) w()
  }

  beforeAll(async () => {
    port = await freePort()
    consul = createServer((req, res) => {
      const url = new URL(req.url!, 'http://consul')
      queries.push(url.pathname + url.search)
      const m = /^\/v1\/health\/service\/([^/]+)$/.exec(url.pathname)
      if (req.method !== 'GET' || !m) return void res.writeHead(404).end()
      const answer = () => {
        const passingOnly = url.searchParams.get('passing') !== null
        const body = [...entries.entries()]
          .filter(([, e]) => !passingOnly || e.status === 'passing')
          .map(([id, e]) => ({
            Node: { Node: `node-${id}`, Address: '10.255.255.1' },
            Service: { ID: id, Service: m[1], Address: e.address, Port: e.port, Weights: { Passing: e.weight, Warning: 1 } },
            Checks: [{ CheckID: `service:${id}`, Status: e.status }],
          }))
        res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': String(index) })
        res.end(JSON.stringify(body))
      }
      // A blocking query: held until the index moves past the one given, or `wait` passes.
      const asked = Number(url.searchParams.get('index') ?? 0)
      if (asked > 0 && asked >= index) {
        const waitMs = Math.min(Number((url.searchParams.get('wait') ?? '30s').replace('s', '')) * 1000, 60_000)
        const wake = () => {
          waiting.delete(wake)
          clearTimeout(timer)
          answer()
        }
        const timer = setTimeout(wake, waitMs)
        waiting.add(wake)
        return
      }
      answer()
    })
    await new Promise<void>((r) => consul.listen(port, '127.0.0.1', r))
  })
  afterAll(async () => {
    for (const w of waiting) w()
    await new Promise((r) => consul.close(r))
  })

  it('follows the passing instances of a service with blocking queries', async () => {
    entries.set('web-a', { address: '127.0.0.1', port: a.port, status: 'passing', weight: 1 })
    const gw = await startProxyGateway(
      nats.url,
      { upstreams: { web: { discover: { consul: 'web' } } }, routes: [{ path: '/web/*', upstream: 'web', auth: 'public' }] },
      sink.log,
      { consulUrl: `http://127.0.0.1:${port}` },
    )
    cleanup.push(() => gw.stop())
    await waitFor(async () => (await instanceOf(gw, '/web/x')) === 'a', 5000)
    // Held open now: the next query carries the last index.
    await waitFor(() => queries.some((q) => q.includes('index=7')))
    expect(queries[0]).toMatch(/^\/v1\/health\/service\/web\?(?=.*passing=true)(?=.*wait=30s)/)

    entries.set('web-b', { address: '127.0.0.1', port: b.port, status: 'passing', weight: 3 })
    bump()
    await waitFor(async () => {
      const seen = new Set(await Promise.all(Array.from({ length: 8 }, () => instanceOf(gw, '/web/x'))))
      return seen.has('a') && seen.has('b')
    }, 5000)

    entries.get('web-a')!.status = 'critical'
    bump()
    await waitFor(async () => (await Promise.all(Array.from({ length: 6 }, () => instanceOf(gw, '/web/x')))).every((i) => i === 'b'), 5000)
    expect(queries.filter((q) => q.includes('index=')).length).toBeGreaterThanOrEqual(2)
  })
})
