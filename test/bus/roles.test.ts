// The whole system on a nats-server run with the configuration `flowgate start` runs: every process
// connects as its role and does all its work without one permission violation, while each role is
// refused what it has no business doing, and a client without credentials is refused outright.
import { connect, nkeyAuthenticator, type NatsConnection } from 'nats'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BusRole } from '../../lib/bus.js'
import { createTokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import { connectNats } from '../../lib/nats.js'
import { subjects } from '../../lib/subjects.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { createFlowWorker, type FlowWorker } from '../../flows/worker.js'
import { quote } from '../../flows/orders/quote.js'
import type { Flow } from '../../flows/define.js'
import { createSubscriber, type Subscriber } from '../../events/subscriber.js'
import { createEdgeParts } from '../../server/edge/start.js'
import { buildGateway, type Gateway } from '../../server/gateway.js'
import { runEdgeCommand } from '../../cli/events.js'
import { runUpstreamCommand } from '../../cli/upstream.js'
import { startUpstream, type TestUpstream } from '../upstream/harness.js'
import { captureLogs, sleep, testConfig, waitForRoute } from '../harness/stack.js'
import { startLockedNats, type LockedNatsServer } from '../harness/nats.js'
import { waitFor } from '../events/edge-stack.js'
import { tempDir } from '../harness/process.js'

const sink = captureLogs('warn')
let nats: LockedNatsServer
let base: Config
const conns: NatsConnection[] = []
let gateway: Gateway
let edgeClose: () => Promise<void>
let worker: FlowWorker
let subscriber: Subscriber
let catalog: TestUpstream

const as = (role: BusRole, overrides: Record<string, unknown> = {}) => testConfig(nats.url, { ...base, ...nats.settings(role), ...overrides })
async function connectAs(role: BusRole): Promise<NatsConnection> {
  const nc = await connectNats(as(role), sink.log, role)
  conns.push(nc)
  return nc
}
/** A raw client holding a role's key, to try things the role may not do. */
async function rawAs(role: BusRole): Promise<NatsConnection> {
  const nc = await connect({ servers: nats.url, authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(nats.seed(role), 'utf8').trim())), inboxPrefix: role === 'operator' ? '_INBOX' : `_INBOX_${role}` })
  conns.push(nc)
  return nc
}
const violations = () => nats.log().split('\n').filter((l) => /Violation/i.test(l))

beforeAll(async () => {
  nats = await startLockedNats()
  catalog = await startUpstream('catalog-1')
  // A proxy route whose upstream's instances register themselves in the services bucket.
  const servicesFile = join(tempDir('roles'), 'services.json')
  writeFileSync(servicesFile, JSON.stringify({ upstreams: { catalog: { discover: { kv: 'catalog' } } }, routes: [{ path: '/catalog/*', upstream: 'catalog', auth: 'public' }] }))
  base = testConfig(nats.url, { rateLimitCapacity: 2, rateLimitRefillPerSec: 0.01, autoBlockHits: 2, autoBlockWindowSec: 60, autoBlockTtlSec: 60, servicesFile, servicesKvEnabled: true })
  const wnc = await connectAs('flows')
  worker = await createFlowWorker(as('flows'), { nats: wnc, log: sink.log, tokens: createTokenService(base), tracing: disabledTracing, flowDeps: { nats: wnc, probes: {} } }, [quote as unknown as Flow])
  const gnc = await connectAs('gateway')
  const edge = createEdgeParts(as('gateway'), gnc, sink.log, new Registry())
  edgeClose = () => edge.close()
  gateway = await buildGateway(as('gateway'), { nats: gnc, log: sink.log, tokens: createTokenService(base), tracing: disabledTracing, registry: new Registry(), edge })
  await gateway.app.ready()
  const snc = await connectAs('subscriber')
  subscriber = createSubscriber(snc, as('subscriber'), { log: sink.log })
  await subscriber.started()
  await waitFor('blocklist watched', () => edge.blocklist!.ready(), Boolean)
})

afterAll(async () => {
  await subscriber?.close()
  await gateway?.close()
  await edgeClose?.()
  await worker?.stop(1000)
  for (const nc of conns) if (!nc.isClosed()) await nc.close()
  await catalog?.stop()
  await nats?.stop()
})

describe('every role on the locked-down bus', () => {
  it('gateway, worker, subscriber and CLI do all their work without a single permission violation', async () => {
    await waitForRoute(gateway, 'POST', '/api/v1/orders/quote')
    const ok = await gateway.app.inject({ method: 'POST', url: '/api/v1/orders/quote', remoteAddress: '198.51.100.1', payload: { items: [{ sku: 'kettle', quantity: 1 }] } })
    expect(ok.statusCode).toBe(200)
    const traceId = ok.headers['x-trace-id'] as string

    // Rate limited, then auto-blocked by the subscriber through KV, enforced by the gateway's watch.
    const flooder = '198.51.100.9'
    for (let i = 0; i < 6; i++) await gateway.app.inject({ method: 'POST', url: '/api/v1/orders/quote', remoteAddress: flooder, payload: {} })
    await waitFor('flooder blocked', async () => (await gateway.app.inject({ url: '/api/v1/orders/quote', method: 'POST', remoteAddress: flooder, payload: {} })).json().errorCode, (c) => c === 'IP_BLOCKED')

    // The admin trace route reads the trace stream the worker wrote.
    const admin = `Bearer ${createTokenService(base).sign({ sub: 'a', role: 'admin' }).token}`
    await waitFor('trace readable', async () => (await gateway.app.inject({ url: `/traces/${traceId}`, headers: { authorization: admin }, remoteAddress: '198.51.100.2' })).statusCode, (s) => s === 200)

    // The CLI lists, adds and lifts blocks and tails events with its own role.
    const lines: string[] = []
    const cli = (command: 'events' | 'blocks', ...args: string[]) => runEdgeCommand(command, args, as('cli'), sink.log, (l) => lines.push(l), new AbortController().signal)
    expect(await cli('blocks', 'list')).toBe(0)
    expect(lines.some((l) => l.startsWith(flooder))).toBe(true)
    expect(await cli('blocks', 'add', '203.0.113.7', '30')).toBe(0)
    expect(await cli('blocks', 'lift', '203.0.113.7')).toBe(0)
    const stop = new AbortController()
    const tailed: string[] = []
    const tail = runEdgeCommand('events', ['tail'], as('cli'), sink.log, (l) => tailed.push(l), stop.signal)
    await waitFor('tail sees a completion', async () => {
      await gateway.app.inject({ url: '/health', remoteAddress: '198.51.100.3' })
      return tailed.some((l) => l.includes('request.completed'))
    }, Boolean, 5000, 100)
    stop.abort()
    expect(await tail).toBe(0)

    // An HTTP service joins a proxy route with the registrar's key, and leaves it when it stops.
    const leave = new AbortController()
    const registered = runUpstreamCommand(['register', 'catalog', catalog.url, '--ttl', '30'], as('registrar'), sink.log, () => {}, leave.signal)
    // Each poll from its own address: this gateway limits to 2 requests and blocks after 2 hits.
    let poll = 10
    const status = async () => (await gateway.app.inject({ url: '/catalog/items', remoteAddress: `198.51.100.${poll++}` })).statusCode
    await waitFor('registered instance served', status, (s) => s === 200)
    leave.abort()
    expect(await registered).toBe(0)
    await waitFor('deregistered', status, (s) => s === 503)

    await sleep(200)
    expect(violations()).toEqual([])
  })

  it('refuses a client without credentials', async () => {
    await expect(connect({ servers: nats.url, timeout: 2000 })).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' })
  })

  it('refuses each role what it has no business doing, as a permission error', async () => {
    const refused = async (nc: NatsConnection, subject: string): Promise<string> => {
      const sub = nc.subscribe(subject)
      const done = (async () => {
        for await (const m of sub) void m
      })().then(
        () => 'closed',
        (err: { code?: string }) => err.code ?? 'error',
      )
      return Promise.race([done, sleep(2000).then(() => 'allowed')])
    }
    // Workers read flow requests, never gateway events; the subscriber reads neither requests nor other roles' replies.
    expect(await refused(await rawAs('flows'), subjects.gatewayAll)).toBe('PERMISSIONS_VIOLATION')
    expect(await refused(await rawAs('subscriber'), 'api.v1.>')).toBe('PERMISSIONS_VIOLATION')
    expect(await refused(await rawAs('operator'), 'api.v1.>')).toBe('PERMISSIONS_VIOLATION')
    expect(await refused(await rawAs('operator'), '_INBOX_gateway.>')).toBe('PERMISSIONS_VIOLATION')
    expect(await refused(await rawAs('gateway'), 'api.v1.>')).toBe('PERMISSIONS_VIOLATION')
    // Only the gateway publishes gateway events: a worker's publish is refused by the server.
    const wnc = await rawAs('flows')
    const errors: string[] = []
    void (async () => {
      for await (const s of wnc.status()) if (s.type === 'error') errors.push(String(s.data))
    })()
    wnc.publish(subjects.gatewayEvent('circuit.opened'), '{}')
    await wnc.flush()
    await waitFor('publish refused', () => errors.join(' '), (e) => /PERMISSIONS_VIOLATION|Permissions Violation/i.test(e))
    // The operator may read events and alerts.
    expect(await refused(await rawAs('operator'), subjects.gatewayAll)).toBe('allowed')
    // The server logs each refusal: the first test's silence there is real.
    expect(violations().length).toBeGreaterThanOrEqual(6)
  })
})
