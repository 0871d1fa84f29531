// The trace pages with a gateway and a worker in this process on real NATS/JetStream: the waterfall
// for a browser and JSON for API clients, admin only (bearer token, or the session cookie a browser
// signs in with), a strict CSP with no script, values escaped, bounded with 10,000 steps, the list of
// recent traces with its filters, a missing trace stream; and `flowgate trace` in the terminal.
import { existsSync } from 'node:fs'
import { Type } from '@sinclair/typebox'
import type { InjectOptions } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { errors } from '../../lib/errors.js'
import { streams, subjects } from '../../lib/subjects.js'
import { defineFlow, type Flow } from '../../flows/define.js'
import { quote } from '../../flows/orders/quote.js'
import { PAGE_CSP } from '../../server/trace-page.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { CLI, runCli, waitFor } from '../harness/process.js'
import { captureLogs, startGateway, startWorker, testConfig, waitForRoute, type TestGateway, type TestWorker } from '../harness/stack.js'

const nested = defineFlow({
  name: 'pagetest.nested',
  input: Type.Object({ fail: Type.Optional(Type.Boolean()) }),
  output: Type.Object({ ok: Type.Boolean() }),
  http: { method: 'POST', path: '/pagetest/nested' },
  auth: 'public',
  async run(input, ctx) {
    await ctx.step('loadOrder', async (c) => {
      await c.step('readRow', () => new Promise((r) => setTimeout(r, 15)))
      await c.step('<script>alert(1)</script>', () => undefined)
    })
    await ctx.step('chargeCard', async () => {
      await new Promise((r) => setTimeout(r, 10))
      if (input.fail) throw errors.conflict('Card already charged')
    })
    return { ok: true }
  },
}) as unknown as Flow

let nats: NatsServer
let worker: TestWorker
let gw: TestGateway
const config = () => testConfig(nats.url, { eventsEnabled: false, rateLimitEnabled: false })
let adminToken = ''
let customerToken = ''

beforeAll(async () => {
  nats = await startNats()
  const logs = captureLogs('silent')
  worker = await startWorker(config(), [quote as unknown as Flow, nested], logs.log)
  gw = await startGateway(config(), logs.log)
  await waitForRoute(gw.gateway, 'POST', '/api/v1/pagetest/nested')
  const tokens = createTokenService(config())
  adminToken = tokens.sign({ sub: 'admin-1', role: 'admin' }).token
  customerToken = tokens.sign({ sub: 'c-1', role: 'customer' }).token
})

afterAll(async () => {
  await gw?.stop()
  await worker?.stop()
  await nats?.stop()
})

const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
const inject = (opts: InjectOptions) => gw.gateway.app.inject(opts)

/** Runs the nested flow and waits until its four steps can be read back. */
async function tracedRequest(fail = false): Promise<string> {
  const res = await inject({ method: 'POST', url: '/api/v1/pagetest/nested', payload: { fail } })
  expect(res.statusCode).toBe(fail ? 409 : 200)
  const traceId = res.headers['x-trace-id'] as string
  await waitFor(async () => (await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { authorization: `Bearer ${adminToken}` } })).json().data?.steps?.length === 4)
  return traceId
}

describe('GET /traces/:traceId', () => {
  it('answers a browser with the waterfall: request, flow, steps nested in order with offsets, durations, outcomes and the worker', async () => {
    const traceId = await tracedRequest(true)
    const res = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { accept: HTML, authorization: `Bearer ${adminToken}` } })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(res.headers['content-security-policy']).toBe(PAGE_CSP)
    expect(res.headers['cache-control']).toBe('no-store')
    const page = res.body
    expect(page).not.toMatch(/<script|\son\w+=|style="/i)
    expect(page).toContain('<link rel="stylesheet" href="/traces/trace.css">')
    // The request as the gateway saw it, then each step in start order, nested under its parent.
    const rows = [...page.matchAll(/<tr class="(request|run [a-z]+|step [a-z]+)"[^>]*>(.*?)<\/tr>/g)].map((m) => [m[1], m[2]!.replace(/<[^>]+>/g, '|')])
    expect(rows.map((r) => r[0])).toEqual(['request', 'run error', 'step ok', 'step ok', 'step ok', 'step error'])
    expect(rows[0]![1]).toContain('POST /api/v1/pagetest/nested')
    expect(rows[1]![1]).toContain('flow pagetest.nested')
    expect(rows[1]![1]).toContain('error CONFLICT')
    expect(page).toMatch(/class="name d0"[^>]*>flow pagetest\.nested</)
    expect(page).toMatch(/class="name d1"[^>]*>loadOrder</)
    expect(page).toMatch(/class="name d2"[^>]*>readRow</)
    expect(page).toMatch(/class="name d2"[^>]*>&#60;script&#62;alert\(1\)&#60;\/script&#62;</)
    expect(page).toMatch(/class="name d1"[^>]*>chargeCard</)
    expect(page.indexOf('>readRow<')).toBeLessThan(page.indexOf('>chargeCard<'))
    expect(rows[5]![1]).toContain('error CONFLICT')
    const readRow = rows[3]![1]!
    expect(Number(/\|([\d.]+) ms\|\|([\d.]+) ms\|/.exec(readRow)?.[2])).toBeGreaterThanOrEqual(14)
    expect(page).toContain(worker.worker.service.info().id)
    expect(page).toContain('pagetest.nested')
  })

  it('answers API clients with JSON, whatever they accept unless it ranks HTML first; ?format= decides over Accept', async () => {
    const traceId = await tracedRequest()
    const auth = { authorization: `Bearer ${adminToken}` }
    for (const accept of [undefined, '*/*', 'application/json', 'application/json, text/html;q=0.5', 'text/html;q=0']) {
      const res = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: accept ? { ...auth, accept } : auth })
      expect(res.headers['content-type'], String(accept)).toContain('application/json')
      expect(res.json().data).toMatchObject({ traceId, recorded: 4, runs: [{ kind: 'run', flow: 'pagetest.nested', outcome: 'ok' }] })
    }
    expect((await inject({ method: 'GET', url: `/traces/${traceId}?format=json`, headers: { ...auth, accept: HTML } })).headers['content-type']).toContain('application/json')
    expect((await inject({ method: 'GET', url: `/traces/${traceId}?format=html`, headers: auth })).headers['content-type']).toContain('text/html')
    expect((await inject({ method: 'GET', url: `/traces/${traceId}?format=xml`, headers: auth })).json().errorCode).toBe('VALIDATION_ERROR')
  })

  it('is for admins: a browser not signed in gets the sign-in page, an API client the envelope', async () => {
    const traceId = await tracedRequest()
    const browser = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { accept: HTML } })
    expect(browser.statusCode).toBe(401)
    expect(browser.headers['content-type']).toContain('text/html')
    expect(browser.body).toContain('<form method="post" action="/traces/session">')
    expect(browser.body).toContain(`name="next" value="/traces/${traceId}"`)
    expect(browser.body).not.toContain('loadOrder')
    const customer = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { accept: HTML, authorization: `Bearer ${customerToken}` } })
    expect(customer.statusCode).toBe(403)
    expect(customer.body).toContain('not an admin')
    expect((await inject({ method: 'GET', url: `/traces/${traceId}` })).json()).toMatchObject({ status: 401, errorCode: 'UNAUTHORIZED' })
    expect((await inject({ method: 'GET', url: '/traces' })).json()).toMatchObject({ status: 401, errorCode: 'UNAUTHORIZED' })
  })

  it('a browser signs in with a form post (no script): the token goes into an HttpOnly, SameSite=Strict cookie for /traces only', async () => {
    const traceId = await tracedRequest()
    const form = (token: string, next: string) => inject({ method: 'POST', url: '/traces/session', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: HTML }, payload: new URLSearchParams({ token, next }).toString() })
    const ok = await form(adminToken, `/traces/${traceId}`)
    expect(ok.statusCode).toBe(303)
    expect(ok.headers.location).toBe(`/traces/${traceId}`)
    const cookie = String(ok.headers['set-cookie'])
    expect(cookie).toMatch(/^flowgate_traces=[\w.-]+; Path=\/traces; Max-Age=3600; HttpOnly; SameSite=Strict$/)
    const page = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { accept: HTML, cookie: cookie.split(';')[0]! } })
    expect(page.statusCode).toBe(200)
    expect(page.body).toContain('loadOrder')
    // Elsewhere the cookie is nothing: the admin API still wants the header.
    expect((await inject({ method: 'GET', url: '/admin/blocks', headers: { cookie: cookie.split(';')[0]! } })).statusCode).toBe(401)

    expect((await form(adminToken, 'https://evil.example/')).headers.location).toBe('/traces')
    expect((await form(adminToken, '//evil.example')).headers.location).toBe('/traces')
    const bad = await form('not.a.token', '/traces')
    expect(bad.statusCode).toBe(401)
    expect(bad.headers['set-cookie']).toBeUndefined()
    expect((await form(customerToken, '/traces')).statusCode).toBe(403)
    const garbage = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { cookie: 'flowgate_traces=<script>; other=1', accept: HTML } })
    expect(garbage.statusCode).toBe(401)
    const crossSite = await inject({ method: 'POST', url: '/traces/session', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', host: 'gateway.local' }, payload: `token=${adminToken}` })
    expect(crossSite.statusCode).toBe(403)
    expect(crossSite.body).toContain('own page')
    expect(crossSite.headers['set-cookie']).toBeUndefined()
    const opaque = await inject({ method: 'POST', url: '/traces/session', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'null' }, payload: `token=${adminToken}` })
    expect(opaque.statusCode).toBe(403)
    const plain = await inject({ method: 'POST', url: '/traces/session', headers: { 'content-type': 'text/plain' }, payload: `token=${adminToken}` })
    expect(plain.json()).toMatchObject({ errorCode: 'UNSUPPORTED_MEDIA_TYPE' })
    const huge = await inject({ method: 'POST', url: '/traces/session', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${'a'.repeat(20_000)}` })
    expect(huge.statusCode).toBe(413)
    expect((await inject({ method: 'GET', url: '/traces/session?next=/traces' })).body).toContain('<textarea name="token"')
  })

  it('a trace without steps: 404, as a page or as the envelope', async () => {
    const id = 'e'.repeat(32)
    const page = await inject({ method: 'GET', url: `/traces/${id}`, headers: { accept: HTML, authorization: `Bearer ${adminToken}` } })
    expect(page.statusCode).toBe(404)
    expect(page.body).toContain(`No steps recorded for trace ${id}`)
    expect((await inject({ method: 'GET', url: `/traces/${id}`, headers: { authorization: `Bearer ${adminToken}` } })).json().errorCode).toBe('NOT_FOUND')
  })

  it('10,000 steps in one trace: the page lays out 500 of them and says so; JSON carries the first 1,000', { timeout: 60_000 }, async () => {
    const traceId = '1'.repeat(32)
    const js = worker.nc.jetstream()
    const parent = 'a'.repeat(16)
    for (let batch = 0; batch < 10_000; batch += 500) {
      await Promise.all(
        Array.from({ length: 500 }, (_, k) => {
          const i = batch + k
          const step = { v: 1, traceId, spanId: i.toString(16).padStart(16, '0'), parentSpanId: parent, requestId: 'r', flow: 'bulk.flow', step: `step${i}`, outcome: 'ok', startedAt: 1_700_000_000_000 + i, durationMs: 0.5 }
          return js.publish(subjects.trace(traceId), JSON.stringify(step))
        }),
      )
    }
    // A rogue message on the same subject is not a step and is skipped.
    await js.publish(subjects.trace(traceId), 'not json')
    const t0 = performance.now()
    const page = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { accept: HTML, authorization: `Bearer ${adminToken}` } })
    expect(page.statusCode).toBe(200)
    expect(performance.now() - t0).toBeLessThan(20_000)
    expect(page.body.match(/<tr class="step/g)).toHaveLength(500)
    expect(page.body).not.toContain('not json')
    expect(page.body).toContain('Showing 500 of 10001 recorded steps.')
    expect(page.body.length).toBeLessThan(400_000)
    const json = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { authorization: `Bearer ${adminToken}` } })
    expect(json.json().data.steps).toHaveLength(1000)
    expect(json.json().data.recorded).toBe(10_001)
  })
})

describe('GET /traces', () => {
  it('lists recent requests newest first, filtered by flow, status and minimum duration, each linking to its page', async () => {
    const slow = await tracedRequest()
    const failed = await tracedRequest(true)
    await inject({ method: 'POST', url: '/api/v1/orders/quote', payload: { items: [{ sku: 'kettle', quantity: 1 }] } })
    const auth = { authorization: `Bearer ${adminToken}` }
    const list = (query: string) => inject({ method: 'GET', url: `/traces${query}`, headers: auth }).then((r) => r.json().data.requests as Array<{ traceId: string; flow?: string; status: number; durationMs: number; trace: string }>)
    const all = await list('')
    expect(all[0]!.flow).toBe('orders.quote')
    expect(all.find((r) => r.traceId === failed)).toMatchObject({ status: 409, flow: 'pagetest.nested', trace: `/traces/${failed}` })
    const nestedOnly = await list('?flow=pagetest.nested')
    expect(nestedOnly.every((r) => r.flow === 'pagetest.nested')).toBe(true)
    expect(nestedOnly.map((r) => r.traceId)).toContain(slow)
    expect((await list('?status=4')).map((r) => r.traceId)).toContain(failed)
    expect((await list('?status=409')).every((r) => r.status === 409)).toBe(true)
    expect((await list('?minDurationMs=20')).every((r) => r.durationMs >= 20)).toBe(true)
    expect(await list('?minDurationMs=3600000')).toEqual([])
    expect((await list('?limit=1')).length).toBe(1)
    for (const bad of ['?status=42', '?status=abc', '?limit=5000', '?minDurationMs=-1', `?flow=${'x'.repeat(200)}`]) {
      expect((await inject({ method: 'GET', url: `/traces${bad}`, headers: auth })).json().errorCode, bad).toBe('VALIDATION_ERROR')
    }

    const page = await inject({ method: 'GET', url: '/traces?flow=pagetest.nested&status=4', headers: { ...auth, accept: HTML } })
    expect(page.headers['content-security-policy']).toBe(PAGE_CSP)
    expect(page.body).toContain(`<a href="/traces/${failed}">`)
    expect(page.body).not.toContain(`<a href="/traces/${slow}">`)
    expect(page.body).toContain('<form method="get" action="/traces">')
    expect(page.body).toContain('value="pagetest.nested"')
    expect(page.body).not.toMatch(/<script|style="/)
  })

  it('serves its stylesheet to anyone, cacheable', async () => {
    const css = await inject({ method: 'GET', url: '/traces/trace.css' })
    expect(css.statusCode).toBe(200)
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8')
    expect(css.body).toContain('.l50{margin-left:50%}')
  })
})

describe('flowgate trace <traceId>', () => {
  it('prints the waterfall of a real request in the terminal; a bad id is a usage error; no steps says so', { timeout: 30_000 }, async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
    const traceId = await tracedRequest(true)
    const p = runCli(['trace', traceId], { NATS_URL: nats.url, LOG_LEVEL: 'silent' })
    expect(await p.exit).toBe(0)
    const lines = p.output().split('\n')
    expect(lines[0]).toBe(`trace ${traceId}`)
    expect(lines[1]).toMatch(/^flow pagetest\.nested {3}4 steps {3}[\d.]+ ms {3}worker \S+/)
    const stepLines = lines.filter((l) => /\|.*\|$/.test(l))
    expect(stepLines.map((l) => l.slice(0, 36).trimEnd())).toEqual(['flow pagetest.nested', '  loadOrder', '    readRow', '    <script>alert(1)</script>', '  chargeCard'])
    expect(stepLines[0]).toMatch(/error CONFLICT/)
    expect(stepLines[4]).toMatch(/error CONFLICT/)
    expect(stepLines[2]).toMatch(/\s[\d.]+ ms\s+[\d.]+ ms\s+ok/)

    const bad = runCli(['trace', 'nope'], { NATS_URL: nats.url, LOG_LEVEL: 'silent' })
    expect(await bad.exit).toBe(2)
    expect(bad.output()).toContain('usage: flowgate trace <traceId>')
    const none = runCli(['trace', 'f'.repeat(32)], { NATS_URL: nats.url, LOG_LEVEL: 'silent' })
    expect(await none.exit).toBe(1)
    expect(none.output()).toContain(`No steps recorded for trace ${'f'.repeat(32)}`)
  })
})

describe('the trace stream missing', () => {
  it('answers 503 with a clear message, as a page or as the envelope, and the CLI says so', { timeout: 30_000 }, async () => {
    const traceId = await tracedRequest()
    const jsm = await worker.nc.jetstreamManager()
    await jsm.streams.delete(streams.traces)
    const auth = { authorization: `Bearer ${adminToken}` }
    expect((await inject({ method: 'GET', url: `/traces/${traceId}`, headers: auth })).json()).toMatchObject({ status: 503, errorCode: 'SERVICE_UNAVAILABLE', message: 'Trace stream unavailable' })
    const page = await inject({ method: 'GET', url: `/traces/${traceId}`, headers: { ...auth, accept: HTML } })
    expect(page.statusCode).toBe(503)
    expect(page.body).toContain('Trace stream unavailable')
    const p = runCli(['trace', traceId], { NATS_URL: nats.url, LOG_LEVEL: 'silent' })
    expect(await p.exit).toBe(1)
    expect(p.output()).toContain('Trace stream unavailable')
    // Requests go on; their steps are published but not kept.
    expect((await inject({ method: 'POST', url: '/api/v1/pagetest/nested', payload: {} })).statusCode).toBe(200)
  })
})
