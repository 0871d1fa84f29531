// The services file at start and on change: applied within a second, requests under way finish on
// the pool they started on, and every bad edit (invalid JSON, an unknown balancer, a negative
// weight, a duplicate target, a clash with a flow) keeps the last good table, logged once and counted.
import { Type } from '@sinclair/typebox'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineFlow, type Flow } from '../../flows/define.js'
import { ConfigError } from '../../lib/config.js'
import { createUpstreams } from '../../server/upstream/upstreams.js'
import { buildRouteTable } from '../../server/routes.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { waitFor } from '../harness/process.js'
import { captureLogs, startWorker, testConfig, type TestWorker } from '../harness/stack.js'
import { call, servicesFile, startProxyGateway, startUpstream, type ProxyGateway, type TestUpstream } from './harness.js'

const ping = defineFlow({
  name: 'test.ping',
  input: Type.Object({}),
  output: Type.Object({ pong: Type.Boolean() }),
  http: { method: 'GET', path: '/test/ping' },
  auth: 'public',
  async run() {
    return { pong: true }
  },
}) as unknown as Flow

let nats: NatsServer
let a: TestUpstream
let b: TestUpstream
let worker: TestWorker
let gw: ProxyGateway
const sink = captureLogs('info')
const doc = (url: string, extra: Record<string, unknown> = {}) => ({
  upstreams: { svc: { targets: [{ url }], ...extra } },
  routes: [{ path: '/svc/*', upstream: 'svc', auth: 'public' }],
})

beforeAll(async () => {
  nats = await startNats()
  a = await startUpstream('a')
  b = await startUpstream('b')
  worker = await startWorker(testConfig(nats.url), [ping], sink.log)
  gw = await startProxyGateway(nats.url, doc(a.url), sink.log)
  await waitFor(async () => (await call(gw.base, '/api/v1/test/ping')).status === 200)
})

afterAll(async () => {
  await gw?.stop()
  await worker?.stop()
  await a?.stop()
  await b?.stop()
  await nats?.stop()
})

const instance = async () => (await call(gw.base, '/svc/x')).json().instance
const rejected = async () => {
  const text = await (await fetch(`${gw.base}/metrics`)).text()
  return Number(/flowgate_services_reloads_total\{outcome="rejected"\} (\d+)/.exec(text)?.[1] ?? 0)
}

describe('services file reload', () => {
  it('applies an edit within a second', async () => {
    expect(await instance()).toBe('a')
    const started = Date.now()
    gw.file.write(doc(b.url))
    await waitFor(async () => (await instance()) === 'b', 3000)
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('lets a request under way finish on the target it started on', async () => {
    gw.file.write(doc(b.url))
    await waitFor(async () => (await instance()) === 'b', 3000)
    let release: () => void = () => {}
    const held = new Promise<void>((r) => (release = r))
    b.setHandler((_req, res) => {
      void held.then(() => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"instance":"b-late"}')
      })
    })
    const inFlight = call(gw.base, '/svc/slow')
    await waitFor(() => b.seen.some((s) => s.url === '/svc/slow'))
    gw.file.write(doc(a.url))
    // Asked of the table, not with a request: one sent before the swap would wait on the held target.
    await waitFor(() => gw.gateway.upstreams.table().routes[0]?.upstream.targets[0]?.url === a.url, 3000)
    expect(await instance()).toBe('a')
    release()
    const res = await inFlight
    expect(res.status).toBe(200)
    expect(res.json()).toEqual({ instance: 'b-late' })
  })

  it.each([
    ['invalid JSON', '{"upstreams": {"svc": ', 'invalid JSON'],
    ['an unknown balancer', { ...doc('http://127.0.0.1:1', { balancer: 'fastest' }) }, 'unknown balancer "fastest"'],
    ['a negative weight', { upstreams: { svc: { targets: [{ url: 'http://127.0.0.1:1', weight: -1 }] } }, routes: [{ path: '/svc/*', upstream: 'svc' }] }, '/upstreams/svc/targets/0/weight'],
    ['a duplicate target', { upstreams: { svc: { targets: [{ url: 'http://127.0.0.1:1' }, { url: 'http://127.0.0.1:1/' }] } }, routes: [{ path: '/svc/*', upstream: 'svc' }] }, 'duplicate target'],
    ['a route clashing with a flow', { upstreams: { svc: { targets: [{ url: 'http://127.0.0.1:1' }] } }, routes: [{ path: '/svc/*', upstream: 'svc' }, { path: '/api/v1/test/:name', upstream: 'svc' }] }, 'clashes with flow test.ping'],
  ])('keeps the last good table on %s, logs why once and counts it', async (_name, bad, why) => {
    const before = await rejected()
    const logged = () => sink.lines.filter((l) => l.msg === 'services file rejected: the last good routes stay in force' && (l.problems as string[]).join('\n').includes(why))
    gw.file.write(bad)
    await waitFor(async () => (await rejected()) === before + 1, 3000)
    expect(await instance()).toBe('a')
    expect((await call(gw.base, '/api/v1/test/ping')).status).toBe(200)
    // The same bad content seen again (a touch) is not logged again.
    gw.file.write(bad)
    await waitFor(async () => (await rejected()) === before + 2, 3000)
    expect(logged()).toHaveLength(1)
    gw.file.write(doc(a.url))
    await waitFor(async () => sink.lines.filter((l) => l.msg === 'services file applied').length > 0 && (await instance()) === 'a')
  })

  it('refuses to start with a bad file, listing every problem', async () => {
    const file = servicesFile({ upstreams: { svc: { balancer: 'x', targets: [{ url: 'nope' }] } }, routes: [{ path: 'bad', upstream: 'other' }] })
    const err = await createUpstreams(testConfig(nats.url, { servicesFile: file.path }), { log: sink.log, registry: new Registry(), events: undefined, flows: () => buildRouteTable([]) }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).problems).toEqual([
      `SERVICES_FILE ${file.path}: /upstreams/svc/balancer: unknown balancer "x" (one of round-robin, least-connections, weighted-round-robin, p2c-ewma)`,
      `SERVICES_FILE ${file.path}: /upstreams/svc/targets/0/url: "nope" is not a URL`,
      `SERVICES_FILE ${file.path}: /routes/0/path: must start with /`,
      `SERVICES_FILE ${file.path}: /routes/0/upstream: unknown upstream "other"`,
    ])
  })

  it('refuses to start when a proxy route clashes with a discovered flow', async () => {
    const file = servicesFile({ upstreams: { svc: { targets: [{ url: a.url }] } }, routes: [{ path: '/api/v1/test/ping', upstream: 'svc', methods: ['GET'] }] })
    const ups = await createUpstreams(testConfig(nats.url, { servicesFile: file.path }), { log: sink.log, registry: new Registry(), events: undefined, flows: () => buildRouteTable([]) })
    try {
      expect(() => ups.checkFlows(gw.gateway.discovery.table())).toThrow(/GET \/api\/v1\/test\/ping \(proxy to svc\) clashes with flow test\.ping at \/api\/v1\/test\/ping/)
    } finally {
      await ups.close()
    }
  })
})
