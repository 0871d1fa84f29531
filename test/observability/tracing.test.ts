// Tracing's settings and faults with a gateway and a worker in this process, real NATS and a real
// OTLP/HTTP receiver: the sampler (parent-based ratio; a sampled-out request keeps its trace id in
// the envelope and the logs), a collector that is down or stalls (requests unaffected, drops counted
// and on /metrics), and a malformed traceparent or tracestate (a new trace, never an error).
import { trace } from '@opentelemetry/api'
import { connect, type NatsConnection } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import { createTracing, registerTracingMetrics, type Tracing } from '../../lib/telemetry.js'
import type { Flow } from '../../flows/define.js'
import { quote } from '../../flows/orders/quote.js'
import { createFlowWorker, type FlowWorker } from '../../flows/worker.js'
import { buildGateway, type Gateway } from '../../server/gateway.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { startOtlpReceiver, type OtlpReceiver } from '../harness/otlp.js'
import { freePort, waitFor } from '../harness/process.js'
import { captureLogs, testConfig, waitForRoute, type LogSink } from '../harness/stack.js'

let nats: NatsServer
let receiver: OtlpReceiver

beforeAll(async () => {
  ;[nats, receiver] = await Promise.all([startNats(), startOtlpReceiver()])
})

afterAll(async () => {
  await receiver?.close()
  await nats?.stop()
})

interface Stack {
  gateway: Gateway
  worker: FlowWorker
  tracing: Tracing
  registry: Registry
  logs: LogSink
  nc: NatsConnection
}

let current: Stack | undefined

async function stack(overrides: Record<string, unknown>): Promise<Stack> {
  const config: Config = testConfig(nats.url, { otelEndpoint: receiver.endpoint, otelBspScheduleDelayMs: 50, eventsEnabled: false, rateLimitEnabled: false, ...overrides })
  const logs = captureLogs('info')
  const tracing = await createTracing(config, 'test')
  const registry = new Registry()
  registerTracingMetrics(registry, tracing)
  const nc = await connect({ servers: nats.url })
  const worker = await createFlowWorker(config, { nats: nc, log: logs.log, tokens: createTokenService(config), tracing, flowDeps: { nats: nc, probes: {} } }, [quote as unknown as Flow])
  const gateway = await buildGateway(config, { nats: nc, log: logs.log, tokens: createTokenService(config), tracing, registry })
  await waitForRoute(gateway, 'POST', '/api/v1/orders/quote')
  current = { gateway, worker, tracing, registry, logs, nc }
  return current
}

afterEach(async () => {
  if (!current) return
  const { gateway, worker, nc, tracing } = current
  current = undefined
  await gateway.close()
  await worker.stop(1000)
  await nc.close()
  await tracing.shutdown()
})

const order = { items: [{ sku: 'kettle', quantity: 1 }] }

async function call(s: Stack, headers: Record<string, string> = {}) {
  const res = await s.gateway.app.inject({ method: 'POST', url: '/api/v1/orders/quote', headers, payload: order })
  expect(res.statusCode).toBe(200)
  return { traceId: res.headers['x-trace-id'] as string, body: res.json<{ traceId: string }>() }
}

describe('sampling (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG)', () => {
  it('parentbased_traceidratio at 0: a new request is not exported, yet its trace id is in the envelope, the header and the logs', async () => {
    const s = await stack({ otelTracesSampler: 'parentbased_traceidratio', otelTracesSamplerArg: 0 })
    const { traceId, body } = await call(s)
    expect(traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(body.traceId).toBe(traceId)
    expect(s.logs.lines.some((l) => l.msg === 'request completed' && l.trace_id === traceId)).toBe(true)
    expect(s.logs.lines.some((l) => l.msg === 'step ok' && l.trace_id === traceId)).toBe(true)

    // A caller that sampled its span is followed (parent-based): that request is exported whole.
    const followed = 'aaf92f3577b34da6a3ce929d0e0e4736'
    await call(s, { traceparent: `00-${followed}-00f067aa0ba902b7-01` })
    await s.tracing.flush()
    await waitFor(() => receiver.trace(followed).length === 6)
    expect(receiver.trace(traceId)).toEqual([])
  })

  it('parentbased_always_on: a caller that sampled out (flags 00) is followed down to the worker', async () => {
    const s = await stack({ otelTracesSampler: 'parentbased_always_on' })
    const out = 'bbf92f3577b34da6a3ce929d0e0e4736'
    const { traceId } = await call(s, { traceparent: `00-${out}-00f067aa0ba902b7-00` })
    expect(traceId).toBe(out)
    const inOnly = 'ccf92f3577b34da6a3ce929d0e0e4736'
    await call(s, { traceparent: `00-${inOnly}-00f067aa0ba902b7-01` })
    await s.tracing.flush()
    await waitFor(() => receiver.trace(inOnly).length === 6)
    expect(receiver.trace(out)).toEqual([])
  })

  it('traceidratio at 1 ignores the caller: even a sampled-out parent is recorded', async () => {
    const s = await stack({ otelTracesSampler: 'traceidratio', otelTracesSamplerArg: 1 })
    const id = 'ddf92f3577b34da6a3ce929d0e0e4736'
    await call(s, { traceparent: `00-${id}-00f067aa0ba902b7-00` })
    await s.tracing.flush()
    // The gateway's span is recorded; the worker follows the flags the gateway sent (its span was sampled).
    await waitFor(() => receiver.trace(id).length === 6)
  })
})

describe('a collector that is down or slow', () => {
  it('down: requests are answered as usual, the lost spans are counted and on /metrics', async () => {
    const closedPort = await freePort()
    const s = await stack({ otelEndpoint: `http://127.0.0.1:${closedPort}`, otelExporterTimeoutMs: 500 })
    const t0 = performance.now()
    for (let i = 0; i < 20; i++) await call(s)
    const perRequestMs = (performance.now() - t0) / 20
    expect(perRequestMs).toBeLessThan(200)
    await s.tracing.flush().catch(() => undefined)
    await waitFor(() => s.tracing.stats().dropped >= 20 * 6, 15_000)
    expect(s.tracing.stats().exported).toBe(0)
    const metrics = await s.registry.metrics()
    const dropped = Number(/^flowgate_trace_spans_dropped_total (\d+)/m.exec(metrics)?.[1])
    expect(dropped).toBeGreaterThanOrEqual(120)
  }, 30_000)

  it('stalling: requests do not wait for it; past the queue bound spans are dropped and counted', async () => {
    receiver.mode = 'stall'
    try {
      const s = await stack({ otelExporterTimeoutMs: 300, otelBspMaxQueueSize: 30 })
      const before = receiver.spans.length
      const t0 = performance.now()
      await Promise.all(Array.from({ length: 40 }, () => call(s)))
      // 40 requests of 6 spans each into a queue of 30: most are dropped at once, the rest when the export times out.
      expect(performance.now() - t0).toBeLessThan(5000)
      await waitFor(() => s.tracing.stats().dropped >= 40 * 6 - 30, 10_000)
      await waitFor(() => s.tracing.stats().dropped === 40 * 6, 10_000)
      expect(s.tracing.stats().queued).toBe(0)
      expect(receiver.spans.length).toBe(before)
    } finally {
      receiver.mode = 'ok'
    }
  }, 30_000)
})

describe('malformed trace context', () => {
  it.each([
    ['not a traceparent', 'garbage'],
    ['all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['upper-case hex', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01'],
    ['too long', `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-${'x'.repeat(5000)}`],
    ['NUL byte', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u0000'],
  ])('%s: a new trace, recorded as a root, and a 200', async (_what, traceparent) => {
    const s = await stack({})
    const { traceId } = await call(s, { traceparent, tracestate: `k=${'v'.repeat(10_000)}` })
    expect(traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736')
    expect(traceId).not.toBe('0'.repeat(32))
    await s.tracing.flush()
    await waitFor(() => receiver.trace(traceId).length === 6)
    const root = receiver.trace(traceId).find((sp) => sp.name === 'POST /api/v1/orders/quote')!
    expect(root.parentSpanId).toBeUndefined()
  })
})

describe('the active span (what library spans hang under)', () => {
  it('is the running step with a context manager, and nothing without one (a gateway, or every library instrumentation disabled)', async () => {
    const config = testConfig(nats.url, { otelEndpoint: receiver.endpoint })
    for (const activeContext of [true, false]) {
      const tracing = await createTracing(config, 'test', { activeContext })
      try {
        const span = tracing.startSpan('step x', undefined, undefined, {}, { kind: 'internal' })
        const seen = await span.run(async () => {
          await new Promise((r) => setTimeout(r, 5))
          return trace.getActiveSpan()?.spanContext().spanId
        })
        span.end()
        expect(seen).toBe(activeContext ? span.spanId : undefined)
      } finally {
        await tracing.shutdown()
      }
    }
  })
})
