// A label-cardinality attack: 10,000 distinct paths, 10,000 distinct methods and 10,000 distinct
// operation (step) names sent at a real gateway and worker; the number of series on /metrics stays
// bounded. What a client controls never becomes a label: paths become route templates (or
// "unmatched"), methods outside Node's parser's fixed list never reach Fastify, and names chosen at
// run time are capped (the rest are "other").
import { METHODS } from 'node:http'
import { connect as tcpConnect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { Type } from '@sinclair/typebox'
import { connect, type NatsConnection } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { defineFlow, flowMetadata, type Flow } from '../../flows/define.js'
import { createFlowMetrics } from '../../flows/metrics.js'
import { createFlowWorker, type FlowWorker } from '../../flows/worker.js'
import { createHttpMetrics } from '../../server/metrics.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { captureLogs, startGateway, testConfig, waitForRoute, type TestGateway } from '../harness/stack.js'

// A flow that names a step after its input: the worst a flow author could do to the step label.
const named = defineFlow({
  name: 'cardinality.named',
  input: Type.Object({ op: Type.String({ minLength: 1, maxLength: 64 }) }),
  output: Type.Object({ ok: Type.Boolean() }),
  http: { method: 'POST', path: '/cardinality/named' },
  auth: 'public',
  async run(input, ctx) {
    await ctx.step(input.op, () => undefined)
    return { ok: true }
  },
}) as unknown as Flow

let nats: NatsServer
let gw: TestGateway
let nc: NatsConnection
let worker: FlowWorker
const workerRegistry = new Registry()
let port = 0

beforeAll(async () => {
  nats = await startNats()
  const config = testConfig(nats.url, { eventsEnabled: false, rateLimitEnabled: false, logLevel: 'silent' })
  const { log } = captureLogs('silent')
  nc = await connect({ servers: nats.url })
  worker = await createFlowWorker(config, { nats: nc, log, tokens: createTokenService(config), tracing: disabledTracing, registry: workerRegistry, flowDeps: { nats: nc, probes: {} } }, [named])
  gw = await startGateway(config, log)
  await waitForRoute(gw.gateway, 'POST', '/api/v1/cardinality/named')
  await gw.gateway.app.listen({ port: 0, host: '127.0.0.1' })
  port = (gw.gateway.app.server.address() as AddressInfo).port
})

afterAll(async () => {
  await gw?.stop()
  await worker?.stop(1000)
  await nc?.close()
  await nats?.stop()
})

/** Series on a registry: every sample line, histogram buckets included. */
async function seriesCount(registry: Registry): Promise<number> {
  return (await registry.getMetricsAsJSON()).reduce((n, m) => n + (m as { values?: unknown[] }).values!.length, 0)
}

async function inBatches(total: number, size: number, send: (i: number) => Promise<unknown>) {
  for (let i = 0; i < total; i += size) await Promise.all(Array.from({ length: Math.min(size, total - i) }, (_, k) => send(i + k)))
}

/** One raw HTTP/1.1 request line with any method; resolves with the status line the server answered (or '' if it hung up). */
function rawRequest(method: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1')
    let data = ''
    socket.setTimeout(5000, () => socket.destroy())
    socket.on('data', (b: Buffer) => (data += b.toString()))
    socket.on('close', () => resolve(data.split('\r\n')[0] ?? ''))
    socket.on('error', () => undefined)
    socket.write(`${method} /api/v1/cardinality/named HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  })
}

describe('label cardinality under attack', () => {
  it('10,000 distinct paths: all labelled "unmatched" or by their template', { timeout: 120_000 }, async () => {
    const before = await seriesCount(gw.registry)
    await inBatches(10_000, 200, (i) => gw.gateway.app.inject({ method: 'GET', url: `/api/v1/probe-${i}/${'x'.repeat(i % 50)}?q=${i}` }))
    const after = await seriesCount(gw.registry)
    // One new route label ("unmatched") with its histogram and its error counter, whatever the 10,000 paths were.
    expect(after - before).toBeLessThanOrEqual(20)
    const text = await gw.registry.metrics()
    expect(text).not.toMatch(/probe-\d/)
  })

  it('10,000 distinct methods: Node answers 400 before Fastify; its own method list is all that reaches a label', { timeout: 120_000 }, async () => {
    const before = await seriesCount(gw.registry)
    const answers = new Set<string>()
    await inBatches(10_000, 100, async (i) => answers.add(await rawRequest(`X${i.toString(36).toUpperCase()}`)))
    expect([...answers]).toEqual(['HTTP/1.1 400 Bad Request'])
    expect(await seriesCount(gw.registry)).toBe(before)
    // Every method the parser knows may reach Fastify (as 404 or 405): a fixed, small set.
    for (const method of METHODS) await rawRequest(method)
    const methods = new Set(((await gw.registry.getSingleMetric('flowgate_http_request_duration_seconds')!.get()).values as Array<{ labels: { method?: string } }>).map((v) => v.labels.method))
    for (const m of methods) expect(METHODS).toContain(m)
    expect(await seriesCount(gw.registry)).toBeLessThan(before + METHODS.length * 30)
  })

  it('10,000 distinct operation (step) names: at most 500 step labels, the rest "other"', { timeout: 180_000 }, async () => {
    await inBatches(10_000, 100, async (i) => {
      const res = await gw.gateway.app.inject({ method: 'POST', url: '/api/v1/cardinality/named', payload: { op: `op-${i}` } })
      expect(res.statusCode).toBe(200)
    })
    const steps = (await workerRegistry.getSingleMetric('flowgate_flow_step_duration_seconds')!.get()).values as Array<{ labels: { step?: string }; metricName?: string }>
    const names = new Set(steps.map((v) => v.labels.step))
    expect(names.size).toBe(501)
    expect(names.has('other')).toBe(true)
    const other = steps.find((v) => v.labels.step === 'other' && v.metricName === 'flowgate_flow_step_duration_seconds_count') as unknown as { value: number }
    expect(other.value).toBe(9_500)
    // Bounded in the end: 501 step labels × (15 buckets with +Inf, sum, count), plus the rest of the worker's metrics.
    expect(await seriesCount(workerRegistry)).toBeLessThan(501 * 17 + 200)
  })

  it('a rogue service on the bus answering 10,000 made-up error codes: the code label keeps to the catalog', { timeout: 120_000 }, async () => {
    const rogueFlow = defineFlow({
      name: 'rogue.codes',
      input: Type.Object({}),
      output: Type.Object({}),
      http: { method: 'GET', path: '/rogue/codes' },
      auth: 'public',
      run: async () => ({}),
    }) as unknown as Flow
    let n = 0
    const rogue = await nc.services.add({ name: 'flowgate-flows', version: '0.0.1', queue: 'flowgate-flows' })
    rogue.addEndpoint('rogue', {
      subject: rogueFlow.subject,
      metadata: flowMetadata(rogueFlow),
      handler: (_err, msg) => msg.respond(JSON.stringify({ success: false, status: 418, errorCode: `MADE_UP_${n++}`, message: 'x', traceId: 'f'.repeat(32) })),
    })
    try {
      await waitForRoute(gw.gateway, 'GET', '/api/v1/rogue/codes')
      await inBatches(10_000, 200, (i) => gw.gateway.app.inject({ method: 'GET', url: `/api/v1/rogue/codes?i=${i}` }))
      expect(n).toBe(10_000)
      const codes = new Set(((await gw.registry.getSingleMetric('flowgate_http_errors_total')!.get()).values as Array<{ labels: { code?: string } }>).map((v) => v.labels.code))
      expect([...codes].filter((c) => c?.startsWith('MADE_UP'))).toEqual([])
      expect(codes.size).toBeLessThan(20)
    } finally {
      await rogue.stop()
    }
  })

  it('10,000 flow names announced on the bus: the flow label of flow calls and runs is capped too', async () => {
    const registry = new Registry()
    const http = createHttpMetrics(registry)
    const flows = createFlowMetrics(registry, { running: () => 0, queued: () => 0, refused: () => 0, limit: () => 1, queueLimit: () => 1, stepEventsDropped: () => 0 })
    for (let i = 0; i < 10_000; i++) {
      http.flowCall(`api.v1.rogue.f${i}`, 'replied')
      flows.flowDone(`rogue.f${i}`, 'ok', 0.001)
    }
    const calls = (await registry.getSingleMetric('flowgate_flow_calls_total')!.get()).values
    expect(calls.length).toBe(201)
    const runs = new Set(((await registry.getSingleMetric('flowgate_flow_duration_seconds')!.get()).values as Array<{ labels: { flow?: string } }>).map((v) => v.labels.flow))
    expect(runs.size).toBe(201)
  })
})
