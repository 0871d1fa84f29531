// The gateway and flow runtime end to end, over a real nats-server with JetStream.
import { Type } from '@sinclair/typebox'
import { connect, headers as natsHeaders, RequestStrategy, type MsgHdrs, type NatsConnection } from 'nats'
import type { InjectOptions } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineFlow, type Flow } from '../../flows/define.js'
import { flows as shippedFlows } from '../../flows/registry.js'
import type { Config } from '../../lib/config.js'
import { createTokenService } from '../../lib/auth.js'
import { errors } from '../../lib/errors.js'
import { captureLogs, sleep, startGateway, startWorker, testConfig, waitForRoute, type TestGateway, type TestWorker } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'

const state = { slowAborted: false, boomCalls: 0 }

const echo = defineFlow({
  name: 'test.echo',
  input: Type.Object(
    {
      id: Type.String({ maxLength: 20 }),
      n: Type.Optional(Type.Integer({ minimum: 0 })),
      flag: Type.Optional(Type.Boolean()),
      text: Type.Optional(Type.String({ maxLength: 100_000 })),
    },
    { additionalProperties: false },
  ),
  output: Type.Object({ id: Type.String(), n: Type.Optional(Type.Integer()), flag: Type.Optional(Type.Boolean()), user: Type.Optional(Type.String()) }),
  http: { method: 'POST', path: '/test/echo/:id' },
  auth: 'public',
  async run(input, ctx) {
    return ctx.step('echo', () => ({ id: input.id, n: input.n, flag: input.flag }))
  },
})

const slow = defineFlow({
  name: 'test.slow',
  input: Type.Object({ ms: Type.Integer({ minimum: 0, maximum: 10_000 }) }),
  output: Type.Object({ waited: Type.Integer() }),
  http: { method: 'GET', path: '/test/slow' },
  auth: 'public',
  timeoutMs: 300,
  async run(input, ctx) {
    await ctx.step('wait', async (s) => {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, input.ms)
        s.signal.addEventListener('abort', () => {
          state.slowAborted = true
          clearTimeout(t)
          resolve()
        })
      })
    })
    return { waited: input.ms }
  },
})

const boom = defineFlow({
  name: 'test.boom',
  input: Type.Object({}),
  output: Type.Object({}),
  http: { method: 'GET', path: '/test/boom' },
  auth: 'public',
  async run(_input, ctx) {
    state.boomCalls++
    await ctx.step('loadThing', (s) =>
      s.step('queryDatabase', () => {
        throw new Error('connect ECONNREFUSED postgres://app:hunter2@db/prod')
      }),
    )
    return {}
  },
})

const badOutput = defineFlow({
  name: 'test.bad_output',
  input: Type.Object({}),
  output: Type.Object({ count: Type.Integer() }),
  http: { method: 'GET', path: '/test/bad-output' },
  auth: 'public',
  async run() {
    return { count: 'many' } as unknown as { count: number }
  },
})

const secured = defineFlow({
  name: 'test.secured',
  input: Type.Object({}),
  output: Type.Object({}),
  http: { method: 'GET', path: '/test/secured' },
  auth: { roles: ['admin'] },
  async run() {
    return {}
  },
})

const created = defineFlow({
  name: 'test.created',
  input: Type.Object({ name: Type.String() }),
  output: Type.Object({ name: Type.String() }),
  http: { method: 'PUT', path: '/test/things' },
  auth: 'public',
  async run(input) {
    throw errors.conflict(`Thing '${input.name}' exists`)
  },
})

const testFlows = [...shippedFlows, echo, slow, boom, badOutput, secured, created] as unknown as Flow[]

let nats: NatsServer
let config: Config
let gw: TestGateway
let worker: TestWorker
let client: NatsConnection
const logs = captureLogs()

beforeAll(async () => {
  nats = await startNats({ maxPayload: 64 * 1024 })
  config = testConfig(nats.url, { bodyLimitBytes: 256 * 1024 })
  worker = await startWorker(config, testFlows, logs.log)
  gw = await startGateway(config, logs.log)
  await waitForRoute(gw.gateway, 'GET', '/api/v1/healthcheck')
  client = await connect({ servers: nats.url })
})

afterAll(async () => {
  await client?.close()
  await gw?.stop()
  await worker?.stop()
  await nats?.stop()
})

const inject = (opts: InjectOptions) => gw.gateway.app.inject(opts)

describe('envelope and headers', () => {
  it('answers the healthcheck with the envelope, x-trace-id and x-request-id', async () => {
    const res = await inject({ method: 'GET', url: '/api/v1/healthcheck' })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toMatchObject({ success: true, status: 200, data: { status: 'ok', checks: { nats: { status: 'up' } } } })
    expect(body.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(res.headers['x-trace-id']).toBe(body.traceId)
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f]{24}$/)
  })

  it('prices a basket with the example flow, reading the query parameter', async () => {
    const res = await inject({
      method: 'POST',
      url: '/api/v1/orders/quote?currency=EUR',
      payload: { items: [{ sku: 'grinder', quantity: 2 }], coupon: 'WELCOME10' },
    })
    expect(res.statusCode).toBe(200)
    expect(res.json().data).toEqual({
      currency: 'EUR',
      lines: [{ sku: 'grinder', quantity: 2, amount: 163.76 }],
      subtotal: 163.76,
      discount: 16.38,
      total: 147.38,
    })
  })

  it('answers a SKU, coupon or key that names an Object.prototype member as any unknown one', async () => {
    const quote = (payload: unknown, url = '/api/v1/orders/quote') => inject({ method: 'POST', url, payload: payload as Record<string, unknown> })
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const sku = await quote({ items: [{ sku: name, quantity: 1 }] })
      expect(sku.statusCode, name).toBe(404)
      expect(sku.json()).toMatchObject({ errorCode: 'NOT_FOUND', message: `Unknown SKU '${name}'` })
      const coupon = await quote({ items: [{ sku: 'kettle', quantity: 1 }], coupon: name })
      expect(coupon.statusCode, name).toBe(400)
      expect(coupon.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR', detailed: [{ field: 'coupon', message: 'is not a valid coupon' }] })
      const query = await quote({ items: [{ sku: 'kettle', quantity: 1 }] }, `/api/v1/orders/quote?${name}=1&currency=${name}`)
      expect(query.statusCode, name).toBe(400)
      expect(query.json().errorCode).toBe('VALIDATION_ERROR')
    }
    // a JSON body carrying __proto__ as a key is refused as malformed, never merged into the input
    const poisoned = await inject({ method: 'POST', url: '/api/v1/orders/quote', headers: { 'content-type': 'application/json' }, payload: '{"items":[{"sku":"kettle","quantity":1}],"__proto__":{"admin":true}}' })
    expect(poisoned.statusCode).toBe(400)
    expect(poisoned.json().errorCode).toBe('VALIDATION_ERROR')
  })

  it('continues an incoming traceparent and keeps a plain x-request-id', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const res = await inject({
      method: 'GET',
      url: '/api/v1/healthcheck',
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'x-request-id': 'client-req-42' },
    })
    expect(res.headers['x-trace-id']).toBe(traceId)
    expect(res.json().traceId).toBe(traceId)
    expect(res.headers['x-request-id']).toBe('client-req-42')
  })

  it('sends the trace context, request id, deadline and token on the bus as NATS headers', async () => {
    // A plain subscription gets a copy of what the queue group's worker gets.
    const copy = client.subscribe('api.v1.test.echo', { max: 1, timeout: 2000 })
    await client.flush() // the server has the subscription before the gateway publishes
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const before = Date.now()
    const res = await inject({
      method: 'POST',
      url: '/api/v1/test/echo/h1',
      payload: {},
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'vendor=abc', 'x-request-id': 'req-h1', authorization: 'Bearer not-checked-here' },
    })
    expect(res.statusCode).toBe(200)
    let seen: MsgHdrs | undefined
    for await (const m of copy) seen = m.headers
    expect(seen?.get('traceparent')).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))
    expect(seen?.get('traceparent')).not.toContain('00f067aa0ba902b7') // the gateway's own span is the parent
    expect(seen?.get('tracestate')).toBe('vendor=abc')
    expect(seen?.get('Flowgate-Request-Id')).toBe('req-h1')
    expect(seen?.get('Authorization')).toBe('Bearer not-checked-here')
    const deadline = Number(seen?.get('Flowgate-Deadline'))
    expect(deadline).toBeGreaterThan(before)
    expect(deadline).toBeLessThanOrEqual(Date.now() + config.requestTimeoutMs)
  })

  it('replaces a hostile traceparent and x-request-id instead of echoing them', async () => {
    const hostile = 'x'.repeat(10_000) + '\u0000<script>'
    const res = await inject({
      method: 'GET',
      url: '/api/v1/healthcheck',
      headers: { traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, 'x-request-id': hostile },
    })
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-trace-id']).toMatch(/^[0-9a-f]{32}$/)
    expect(res.headers['x-trace-id']).not.toBe('0'.repeat(32))
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f]{24}$/)
    const res2 = await inject({ method: 'GET', url: '/api/v1/healthcheck', headers: { traceparent: '00-zz-yy-01', 'x-request-id': 'a b' } })
    expect(res2.headers['x-request-id']).not.toBe('a b')
  })

  it('logs every step of a flow with the trace id, and which step failed', async () => {
    const res = await inject({ method: 'POST', url: '/api/v1/orders/quote', payload: { items: [{ sku: 'coffee-beans', quantity: 1 }] } })
    const traceId = res.json().traceId
    await sleep(50)
    const steps = logs.lines.filter((l) => l.trace_id === traceId && l.step)
    expect(steps.map((l) => l.step)).toEqual(['priceItems', 'applyCoupon', 'convertCurrency'])
    for (const l of steps) {
      expect(l).toMatchObject({ flow: 'orders.quote', outcome: 'ok', request_id: res.headers['x-request-id'] })
      expect(typeof l.durationMs).toBe('number')
      expect(l.span_id).toMatch(/^[0-9a-f]{16}$/)
    }
    const gatewayLine = logs.lines.find((l) => l.trace_id === traceId && l.msg === 'request completed')
    expect(gatewayLine).toMatchObject({ route: '/api/v1/orders/quote', status: 200 })
  })
})

describe('bad input', () => {
  it('rejects malformed JSON with VALIDATION_ERROR', async () => {
    const res = await inject({ method: 'POST', url: '/api/v1/orders/quote', headers: { 'content-type': 'application/json' }, payload: '{"items": [' })
    expect(res.statusCode).toBe(400)
    expect(res.json()).toMatchObject({ success: false, status: 400, errorCode: 'VALIDATION_ERROR', message: 'Malformed JSON body' })
    expect(res.headers['x-trace-id']).toBe(res.json().traceId)
  })

  it('rejects a wrong content type with 415', async () => {
    const res = await inject({ method: 'POST', url: '/api/v1/orders/quote', headers: { 'content-type': 'text/plain' }, payload: 'items=1' })
    expect(res.statusCode).toBe(415)
    expect(res.json()).toMatchObject({ success: false, errorCode: 'UNSUPPORTED_MEDIA_TYPE' })
    const xml = await inject({ method: 'POST', url: '/api/v1/orders/quote', headers: { 'content-type': 'application/xml' }, payload: '<a/>' })
    expect(xml.statusCode).toBe(415)
  })

  it('lists missing, wrong-typed and extra fields in detailed', async () => {
    const res = await inject({
      method: 'POST',
      url: '/api/v1/orders/quote?currency=YEN',
      payload: { items: [{ sku: 'kettle', quantity: 'two' }], extra: true },
    })
    expect(res.statusCode).toBe(400)
    const body = res.json()
    expect(body.errorCode).toBe('VALIDATION_ERROR')
    const fields = body.detailed.map((d: { field: string }) => d.field)
    expect(fields).toEqual(expect.arrayContaining(['items.0.quantity', 'extra', 'currency']))
    const missing = await inject({ method: 'POST', url: '/api/v1/orders/quote', payload: {} })
    expect(missing.json().detailed).toEqual([{ field: 'items', message: 'is required' }])
  })

  it('rejects a body that is not a JSON object', async () => {
    const res = await inject({ method: 'POST', url: '/api/v1/orders/quote', payload: [1, 2] })
    expect(res.statusCode).toBe(400)
    expect(res.json().errorCode).toBe('VALIDATION_ERROR')
  })

  it('coerces query and path strings to the schema types, and rejects what does not convert', async () => {
    const res = await inject({ method: 'POST', url: '/api/v1/test/echo/abc?n=7&flag=true', payload: {} })
    expect(res.json().data).toEqual({ id: 'abc', n: 7, flag: true })
    const bad = await inject({ method: 'POST', url: '/api/v1/test/echo/abc?n=seven', payload: {} })
    expect(bad.statusCode).toBe(400)
    expect(bad.json().detailed[0].field).toBe('n')
  })

  it('rejects a body over the limit with 413', async () => {
    const res = await inject({ method: 'POST', url: '/api/v1/test/echo/a', payload: { text: 'x'.repeat(300 * 1024) } })
    expect(res.statusCode).toBe(413)
    expect(res.json()).toMatchObject({ success: false, errorCode: 'PAYLOAD_TOO_LARGE' })
  })

  it('rejects a payload over NATS max_payload with 413 before publishing, not a timeout', async () => {
    const t0 = Date.now()
    const res = await inject({ method: 'POST', url: '/api/v1/test/echo/a', payload: { text: 'x'.repeat(80 * 1024) } })
    expect(res.statusCode).toBe(413)
    expect(res.json().message).toMatch(/at most 65536/)
    expect(Date.now() - t0).toBeLessThan(1000)
  })

  it('answers an unknown route with the 404 envelope, and a wrong method with 405', async () => {
    const res = await inject({ method: 'GET', url: '/api/v1/nope?x=1' })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toMatchObject({ success: false, status: 404, errorCode: 'NOT_FOUND', message: 'No route GET /api/v1/nope' })
    const wrong = await inject({ method: 'DELETE', url: '/api/v1/healthcheck' })
    expect(wrong.statusCode).toBe(405)
    const options = await inject({ method: 'OPTIONS', url: '/api/v1/healthcheck' })
    expect(options.json().success).toBe(false)
  })

  it('requires a token on a protected flow before anything crosses NATS', async () => {
    const res = await inject({ method: 'GET', url: '/api/v1/test/secured' })
    expect(res.statusCode).toBe(401)
    expect(res.json().errorCode).toBe('UNAUTHORIZED')
    const forged = await inject({ method: 'GET', url: '/api/v1/test/secured', headers: { authorization: 'Bearer not.a.token' } })
    expect(forged.statusCode).toBe(401)
  })
})

describe('flow failures', () => {
  it('masks a flow that throws (500) and logs the real error once, naming the failed step', async () => {
    const before = state.boomCalls
    const res = await inject({ method: 'GET', url: '/api/v1/test/boom' })
    expect(res.statusCode).toBe(500)
    expect(res.json()).toMatchObject({ success: false, status: 500, errorCode: 'INTERNAL_ERROR', message: 'Internal error' })
    expect(res.body).not.toContain('hunter2')
    expect(state.boomCalls).toBe(before + 1)
    await sleep(50)
    const failures = logs.lines.filter((l) => l.trace_id === res.json().traceId && l.msg === 'flow failed')
    expect(failures).toHaveLength(1)
    expect(failures[0]).toMatchObject({ failedStep: 'loadThing/queryDatabase', errorCode: 'INTERNAL_ERROR' })
  })

  it('passes a typed error from the flow through with its status', async () => {
    const res = await inject({ method: 'PUT', url: '/api/v1/test/things', payload: { name: 'a' } })
    expect(res.statusCode).toBe(409)
    expect(res.json()).toMatchObject({ errorCode: 'CONFLICT', message: "Thing 'a' exists" })
    const sku = await inject({ method: 'POST', url: '/api/v1/orders/quote', payload: { items: [{ sku: 'nope', quantity: 1 }] } })
    expect(sku.json()).toMatchObject({ status: 404, errorCode: 'NOT_FOUND', message: "Unknown SKU 'nope'" })
  })

  it('answers 504 when a flow runs past its deadline, and aborts ctx.signal', async () => {
    state.slowAborted = false
    const t0 = Date.now()
    const res = await inject({ method: 'GET', url: '/api/v1/test/slow?ms=2000' })
    expect(res.statusCode).toBe(504)
    expect(res.json().errorCode).toBe('GATEWAY_TIMEOUT')
    expect(Date.now() - t0).toBeLessThan(1500)
    await sleep(100)
    expect(state.slowAborted).toBe(true)
  })

  it('refuses output that does not match the flow schema (500)', async () => {
    const res = await inject({ method: 'GET', url: '/api/v1/test/bad-output' })
    expect(res.statusCode).toBe(500)
    expect(res.json().errorCode).toBe('INTERNAL_ERROR')
  })

  it('answers 502 when a flow replies with something that is not an envelope', async () => {
    // A flow from "another codebase": a plain micro service publishing Flowgate metadata.
    const foreign = await client.services.add({ name: 'foreign', version: '1.0.0' })
    foreign.addEndpoint('garbage', {
      subject: 'api.v1.foreign.garbage',
      metadata: { 'flowgate.flow': 'foreign.garbage', 'flowgate.http.method': 'GET', 'flowgate.http.path': '/api/v1/foreign/garbage', 'flowgate.auth': '"public"' },
      handler: (_err, msg) => msg.respond(msg.data.length ? 'not json' : '{"success":"yes"}'),
    })
    await waitForRoute(gw.gateway, 'GET', '/api/v1/foreign/garbage')
    const res = await inject({ method: 'GET', url: '/api/v1/foreign/garbage' })
    expect(res.statusCode).toBe(502)
    expect(res.json()).toMatchObject({ success: false, errorCode: 'BAD_GATEWAY' })
    await foreign.stop()
  })
})

describe('on the bus', () => {
  it('answers a plain NATS request (what `nats req api.v1.healthcheck ""` sends) with the envelope', async () => {
    const msg = await client.request('api.v1.healthcheck', new Uint8Array(0), { timeout: 2000 })
    expect(msg.json()).toMatchObject({ success: true, status: 200, data: { status: 'ok' } })
  })

  it('validates input in the flow too, with Nats-Service-Error headers', async () => {
    const h = natsHeaders()
    h.set('Flowgate-Request-Id', 'bus-1')
    const msg = await client.request('api.v1.orders.quote', JSON.stringify({ items: 'all of them' }), { timeout: 2000, headers: h })
    expect(msg.json()).toMatchObject({ success: false, status: 400, errorCode: 'VALIDATION_ERROR', detailed: [{ field: 'items' }] })
    expect(msg.headers?.get('Nats-Service-Error-Code')).toBe('400')
    expect(msg.headers?.get('Nats-Service-Error')).toBe('Invalid input')
    const garbage = await client.request('api.v1.orders.quote', 'not json', { timeout: 2000 })
    expect(garbage.json()).toMatchObject({ errorCode: 'VALIDATION_ERROR', message: 'Malformed JSON' })
  })

  it('refuses a protected flow called on the bus without a valid token', async () => {
    const msg = await client.request('api.v1.test.secured', '{}', { timeout: 2000 })
    expect(msg.json()).toMatchObject({ success: false, status: 401, errorCode: 'UNAUTHORIZED' })
  })

  it('answers $SRV.PING, $SRV.INFO and $SRV.STATS with flow metadata', async () => {
    const svc = client.services.client({ maxWait: 300, strategy: RequestStrategy.Timer })
    const pings = []
    for await (const p of await svc.ping('flowgate-flows')) pings.push(p)
    expect(pings.length).toBe(1)
    const infos = []
    for await (const i of await svc.info('flowgate-flows')) infos.push(i)
    const quoteEp = infos[0]!.endpoints.find((e) => e.subject === 'api.v1.orders.quote')!
    expect(quoteEp.queue_group).toBe('flowgate-flows')
    expect(quoteEp.metadata).toMatchObject({ 'flowgate.flow': 'orders.quote', 'flowgate.http.method': 'POST', 'flowgate.http.path': '/api/v1/orders/quote', 'flowgate.auth': '"public"' })
    expect(JSON.parse(quoteEp.metadata!['flowgate.schema.input']!).required).toEqual(['currency', 'items'])
    const stats = []
    for await (const s of await svc.stats('flowgate-flows')) stats.push(s)
    expect(stats[0]!.endpoints!.find((e) => e.subject === 'api.v1.healthcheck')!.num_requests).toBeGreaterThan(0)
  })
})

describe('docs and ops', () => {
  it('reads one request\'s recorded steps back from the trace stream (admin only)', async () => {
    const res = await inject({ method: 'POST', url: '/api/v1/orders/quote', payload: { items: [{ sku: 'kettle', quantity: 1 }] } })
    const traceId = res.json().traceId
    const admin = createTokenService(config).sign({ sub: 'admin-1', role: 'admin' }).token
    const auth = { authorization: `Bearer ${admin}` }
    let trace = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: auth })
    for (let i = 0; i < 20 && trace.statusCode === 404; i++) {
      await sleep(50)
      trace = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: auth })
    }
    expect(trace.statusCode).toBe(200)
    const steps = trace.json().data.steps
    expect(steps.map((s: { step: string }) => s.step)).toEqual(['priceItems', 'applyCoupon', 'convertCurrency'])
    expect(steps[0]).toMatchObject({ v: 1, traceId, flow: 'orders.quote', outcome: 'ok', requestId: res.headers['x-request-id'] })
    expect((await inject({ method: 'GET', url: `/traces/${traceId}` })).statusCode).toBe(401)
    const customer = createTokenService(config).sign({ sub: 'c-1', role: 'customer' }).token
    expect((await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { authorization: `Bearer ${customer}` } })).statusCode).toBe(403)
    expect((await inject({ method: 'GET', url: `/traces/${'f'.repeat(32)}`, headers: auth })).json().errorCode).toBe('NOT_FOUND')
    expect((await inject({ method: 'GET', url: '/traces/not-a-trace', headers: auth })).json()).toMatchObject({
      errorCode: 'VALIDATION_ERROR',
      detailed: [{ field: 'traceId', message: expect.stringContaining('pattern') }],
    })
    // Who calls comes before what they send: an anonymous caller learns nothing of the route's schema.
    expect((await inject({ method: 'GET', url: '/traces/not-a-trace' })).json().errorCode).toBe('UNAUTHORIZED')
  })

  it('serves an OpenAPI document built from the discovered flows', async () => {
    const res = await inject({ method: 'GET', url: '/docs/json' })
    const doc = res.json()
    expect(doc.openapi).toBe('3.1.0')
    expect(doc.paths['/api/v1/orders/quote'].post.requestBody.content['application/json'].schema.required).toEqual(['currency', 'items'])
    expect(doc.paths['/api/v1/test/echo/{id}'].post.parameters).toEqual([expect.objectContaining({ name: 'id', in: 'path', required: true })])
    expect(doc.paths['/api/v1/test/secured'].get.security).toEqual([{ bearer: [] }])
    const html = await inject({ method: 'GET', url: '/docs' })
    expect(html.headers['content-type']).toMatch(/text\/html/)
    expect(html.body).toContain('/api/v1/orders/quote')
    // The page is a document: helmet's defaults (its inline style allowed), not the API's deny-all CSP.
    expect(html.headers['content-security-policy']).toContain("style-src 'self' https: 'unsafe-inline'")
    expect(html.headers['x-frame-options']).toBe('SAMEORIGIN')
    expect(res.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'")
  })

  it('reports liveness and readiness', async () => {
    expect((await inject({ method: 'GET', url: '/health' })).json()).toEqual({ status: 'ok' })
    const ready = await inject({ method: 'GET', url: '/ready' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json().checks).toEqual({ nats: true, flows: true, accepting: true })
  })

  it('exposes request durations in seconds with the route template, never the raw URL', async () => {
    await inject({ method: 'POST', url: '/api/v1/test/echo/secret-id-123', payload: {} })
    const text = await (await inject({ method: 'GET', url: '/metrics' })).body
    expect(text).toContain('flowgate_http_request_duration_seconds_bucket')
    expect(text).toContain('route="/api/v1/test/echo/:id"')
    expect(text).not.toContain('secret-id-123')
    // The gateway's own routes by their template; an unknown path stays one bounded label.
    await inject({ method: 'GET', url: '/health' })
    await inject({ method: 'GET', url: '/api/v1/no/such/route-42' })
    const after = await (await inject({ method: 'GET', url: '/metrics' })).body
    expect(after).toMatch(/flowgate_http_request_duration_seconds_count\{method="GET",route="\/health",status="200"\} \d+/)
    expect(after).toMatch(/flowgate_http_request_duration_seconds_count\{method="GET",route="unmatched",status="404"\} \d+/)
    expect(after).not.toContain('route-42')
  })
})
