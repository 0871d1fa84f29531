// Attacks from the bus and through it, replayed against the locked-down configuration: a rogue with
// a worker's valid key claiming an existing path or flow, a responder forging or leaking in its
// replies, a client reusing another's request id and hanging up, and a far-future deadline.
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Type } from '@sinclair/typebox'
import { connect, headers as natsHeaders, nkeyAuthenticator, type NatsConnection } from 'nats'
import { readFileSync } from 'node:fs'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BusRole } from '../../lib/bus.js'
import { createTokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import { connectNats, inboxOf } from '../../lib/nats.js'
import { FLOW_QUEUE_GROUP, headers as wire, metadata, subjects } from '../../lib/subjects.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { defineFlow, type Flow } from '../../flows/define.js'
import { quote } from '../../flows/orders/quote.js'
import { createFlowWorker, timeLeft, type FlowWorker } from '../../flows/worker.js'
import { buildGateway, type Gateway } from '../../server/gateway.js'
import { captureLogs, sleep, testConfig, waitForRoute } from '../harness/stack.js'
import { startLockedNats, type LockedNatsServer } from '../harness/nats.js'
import { waitFor } from '../events/edge-stack.js'

const sink = captureLogs('info')
let nats: LockedNatsServer
let config: Config
let gateway: Gateway
let registry: Registry
let worker: FlowWorker
let gatewayUrl = ''
const conns: NatsConnection[] = []
const runs: Array<{ requestId: string; outcome: 'done' | 'aborted' }> = []

const slow = defineFlow({
  name: 'slow.wait',
  input: Type.Object({}),
  output: Type.Object({ waited: Type.Boolean() }),
  http: { method: 'POST', path: '/slow/wait' },
  auth: 'public',
  timeoutMs: 400,
  async run(_input, ctx) {
    const aborted = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 300)
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
    runs.push({ requestId: ctx.requestId, outcome: aborted ? 'aborted' : 'done' })
    if (!aborted) await new Promise((r) => setTimeout(r, 1000)) // past the flow's own 400 ms when not cancelled first
    return { waited: true }
  },
})

async function rawAs(role: BusRole): Promise<NatsConnection> {
  const seed = new TextEncoder().encode(readFileSync(nats.seed(role), 'utf8').trim())
  const nc = await connect({ servers: nats.url, authenticator: nkeyAuthenticator(seed), inboxPrefix: `_INBOX_${role}` })
  conns.push(nc)
  return nc
}

/** A service other than the workers, announcing endpoints with Flowgate's metadata (valid worker key). */
async function rogueService(name: string, endpoints: Array<{ flow: string; path: string; reply: (traceId: string) => string }>) {
  const nc = await rawAs('flows')
  const service = await nc.services.add({ name, version: '6.6.6', queue: FLOW_QUEUE_GROUP })
  for (const e of endpoints) {
    service.addEndpoint(e.flow.replace('.', '-'), {
      subject: subjects.flow(e.flow),
      queue: FLOW_QUEUE_GROUP,
      metadata: { [metadata.flow]: e.flow, [metadata.method]: 'POST', [metadata.path]: e.path, [metadata.auth]: '"public"', [metadata.input]: '{"type":"object"}' },
      handler: (_err, msg) => msg.respond(e.reply(msg.headers?.get('traceparent')?.split('-')[1] ?? '')),
    })
  }
  return service
}

beforeAll(async () => {
  nats = await startLockedNats()
  config = testConfig(nats.url, nats.settings('gateway'))
  const wnc = await connectNats(testConfig(nats.url, nats.settings('flows')), sink.log, 'flows')
  conns.push(wnc)
  worker = await createFlowWorker(config, { nats: wnc, log: sink.log, tokens: createTokenService(config), tracing: disabledTracing, flowDeps: { nats: wnc, probes: {} } }, [quote, slow] as unknown as Flow[])
  const gnc = await connectNats(config, sink.log, 'gateway')
  conns.push(gnc)
  registry = new Registry()
  gateway = await buildGateway(config, { nats: gnc, log: sink.log, tokens: createTokenService(config), tracing: disabledTracing, registry })
  await gateway.app.listen({ port: 0, host: '127.0.0.1' })
  gatewayUrl = `http://127.0.0.1:${(gateway.app.server.address() as AddressInfo).port}`
  await waitForRoute(gateway, 'POST', '/api/v1/orders/quote')
})

afterAll(async () => {
  await gateway?.close()
  await worker?.stop(1000)
  for (const nc of conns) if (!nc.isClosed()) await nc.close()
  await nats?.stop()
})

const post = (url: string, payload: unknown = {}) => gateway.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> })

describe('route ownership', () => {
  it('keeps the first owner of a path and of a flow name; the rogue is logged once, counted and shown on /ready', async () => {
    const rogue = await rogueService('rogue-svc', [
      { flow: 'rogue.login', path: '/api/v1/orders/quote', reply: (t) => JSON.stringify({ success: true, status: 200, data: { token: 'forged' }, traceId: t }) },
      { flow: 'orders.quote', path: '/api/v1/rogue/quote', reply: (t) => JSON.stringify({ success: true, status: 200, data: { stolen: true }, traceId: t }) },
    ])
    await waitFor('both conflicts seen', async () => {
      await gateway.discovery.refresh()
      return gateway.discovery.conflicts().length
    }, (n) => n === 2)

    // The path stays the workers'; the rogue's own path for the same flow is never routed. While
    // another service answers on the flow's subject, the flow is not called at all: NATS would hand
    // some requests to the impostor.
    const order = { items: [{ sku: 'kettle', quantity: 1 }] }
    for (let i = 0; i < 10; i++) {
      const res = await post('/api/v1/orders/quote', order)
      expect(res.json()).toMatchObject({ status: 503, errorCode: 'SERVICE_UNAVAILABLE', message: 'Flow unavailable: another service answers on its subject' })
    }
    expect((await post('/api/v1/rogue/quote')).statusCode).toBe(404)

    const ready = (await gateway.app.inject({ url: '/ready' })).json()
    expect(ready.ready).toBe(true)
    expect(ready.conflicts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'path', claim: 'POST /api/v1/orders/quote', kept: expect.objectContaining({ service: 'flowgate-flows', flow: 'orders.quote' }), refused: expect.objectContaining({ service: 'rogue-svc', id: rogue.info().id, flow: 'rogue.login' }) }),
        expect.objectContaining({ kind: 'flow', claim: 'api.v1.orders.quote', refused: expect.objectContaining({ service: 'rogue-svc' }) }),
      ]),
    )
    for (let i = 0; i < 3; i++) await gateway.discovery.refresh()
    const logged = sink.lines.filter((l) => l.level === 50 && typeof l.msg === 'string' && l.msg.includes('rogue-svc'))
    expect(logged).toHaveLength(2) // once per conflict, however many rounds see it
    expect(logged[0]!.msg).toMatch(new RegExp(`rogue-svc \\(${rogue.info().id}\\) claims .* already served by flowgate-flows`))
    const metrics = await registry.getSingleMetricAsString('flowgate_route_conflicts_total')
    expect(metrics).toMatch(/kind="path"} 1/)
    expect(metrics).toMatch(/kind="flow"} 1/)
    await rogue.stop()
    await gateway.discovery.refresh()
    expect(gateway.discovery.conflicts()).toEqual([])
    for (let i = 0; i < 10; i++) expect((await post('/api/v1/orders/quote', order)).json()).toMatchObject({ status: 200, data: { currency: 'USD' } })
  })

  it('refuses a non-queue responder on a flow subject at the server, even with a worker key', async () => {
    const nc = await rawAs('flows')
    const sub = nc.subscribe(subjects.flow('orders.quote'))
    const outcome = await Promise.race([
      (async () => {
        for await (const m of sub) void m
      })().then(
        () => 'closed',
        (err: { code?: string }) => err.code,
      ),
      sleep(2000).then(() => 'allowed'),
    ])
    expect(outcome).toBe('PERMISSIONS_VIOLATION')
  })
})

describe('replies', () => {
  it('masks a 5xx message that is not the catalog\'s, refuses forged and foreign envelopes, passes a 4xx message', async () => {
    const leak = 'connect to postgres://admin:hunter2@db.internal:5432/prod failed'
    const shady = await rogueService('shady-svc', [
      { flow: 'shady.leak', path: '/api/v1/shady/leak', reply: (t) => JSON.stringify({ success: false, status: 503, errorCode: 'SERVICE_UNAVAILABLE', message: leak, traceId: t }) },
      { flow: 'shady.code', path: '/api/v1/shady/code', reply: (t) => JSON.stringify({ success: false, status: 500, errorCode: 'PG_DOWN', message: 'Internal error', traceId: t }) },
      { flow: 'shady.garbage', path: '/api/v1/shady/garbage', reply: () => 'HTTP/1.1 200 OK' },
      { flow: 'shady.foreign', path: '/api/v1/shady/foreign', reply: () => JSON.stringify({ success: true, status: 200, data: {}, traceId: 'f'.repeat(32) }) },
      { flow: 'shady.notfound', path: '/api/v1/shady/notfound', reply: (t) => JSON.stringify({ success: false, status: 404, errorCode: 'NOT_FOUND', message: 'No order 42', traceId: t }) },
    ])
    await waitForRoute(gateway, 'POST', '/api/v1/shady/notfound')

    const leaked = await post('/api/v1/shady/leak')
    expect(leaked.statusCode).toBe(503)
    expect(leaked.json()).toMatchObject({ errorCode: 'SERVICE_UNAVAILABLE', message: 'Service unavailable' })
    expect(leaked.body).not.toContain('hunter2')
    expect(sink.lines.some((l) => l.msg === 'flow 5xx message masked' && String(l.message).includes('hunter2'))).toBe(true)
    expect((await post('/api/v1/shady/code')).json()).toMatchObject({ status: 500, errorCode: 'INTERNAL_ERROR', message: 'Internal error' })
    expect((await post('/api/v1/shady/garbage')).json()).toMatchObject({ status: 502, errorCode: 'BAD_GATEWAY' })
    expect((await post('/api/v1/shady/foreign')).json()).toMatchObject({ status: 502, errorCode: 'BAD_GATEWAY', message: 'Flow replied for another trace' })
    expect((await post('/api/v1/shady/notfound')).json()).toMatchObject({ status: 404, errorCode: 'NOT_FOUND', message: 'No order 42' })
    await shady.stop()
  })
})

describe('cancellation and deadlines', () => {
  it('a client reusing another\'s request id and hanging up cancels only its own run; the cancel names a call id the gateway made', async () => {
    await waitForRoute(gateway, 'POST', '/api/v1/slow/wait')
    const cancels: string[] = []
    const spy = await rawAs('flows')
    spy.subscribe(subjects.cancel, { callback: (_e, m) => cancels.push(m.string()) })
    await spy.flush()
    runs.length = 0

    const call = (abortAfterMs?: number) =>
      new Promise<number | 'aborted'>((resolve) => {
        const req = httpRequest(`${gatewayUrl}/api/v1/slow/wait`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'shared-id' } }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        })
        req.on('error', () => resolve('aborted'))
        req.end('{}')
        if (abortAfterMs !== undefined) setTimeout(() => req.destroy(), abortAfterMs)
      })
    const [abandoned, patient] = await Promise.all([call(100), call()])
    expect(abandoned).toBe('aborted')
    // The patient caller's run finished untouched, then passed the flow's own 400 ms (its 504 at the deadline).
    expect(patient).toBe(504)
    await waitFor('both runs recorded', () => runs.length, (n) => n === 2)
    expect(runs.map((r) => r.outcome).sort()).toEqual(['aborted', 'done'])
    expect(runs.every((r) => r.requestId === 'shared-id')).toBe(true)
    expect(cancels).toHaveLength(1)
    expect(cancels[0]).toMatch(/^[0-9a-f]{32}$/)
  })

  it('clamps a far-future or malformed deadline to the flow\'s own maximum instead of overflowing the timer', async () => {
    const gnc = await rawAs('gateway')
    for (const deadline of ['99999999999999999999', String(Date.now() + 3_600_000), 'soon']) {
      const h = natsHeaders()
      h.set(wire.deadline, deadline)
      h.set(wire.traceparent, `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`)
      const t0 = Date.now()
      const reply = await gnc.request(subjects.flow('slow.wait'), '{}', { timeout: 3000, headers: h })
      const ms = Date.now() - t0
      expect(reply.json()).toMatchObject({ status: 504, errorCode: 'GATEWAY_TIMEOUT' })
      expect(ms).toBeGreaterThanOrEqual(350) // not at once (an overflowed timer fires after 1 ms)
      expect(ms).toBeLessThan(1200)
    }
    expect(inboxOf(gnc)).toBe('_INBOX_gateway')
  })

  it('timeLeft: the caller\'s deadline, never past the maximum', () => {
    expect(timeLeft(String(10_000 + 200), 5000, 10_000)).toBe(200)
    expect(timeLeft(String(10_000 + 999_999), 5000, 10_000)).toBe(5000)
    expect(timeLeft('1e300', 5000, 10_000)).toBe(5000)
    expect(timeLeft('Infinity', 5000, 10_000)).toBe(5000)
    expect(timeLeft('', 5000, 10_000)).toBe(5000)
    expect(timeLeft('NaN', 5000, 10_000)).toBe(5000)
    expect(timeLeft(String(9_000), 5000, 10_000)).toBe(-1000)
  })
})
