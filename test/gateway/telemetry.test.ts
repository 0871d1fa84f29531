// With OTEL_EXPORTER_OTLP_ENDPOINT set, the gateway request span and every flow step span are
// exported over OTLP/HTTP in one trace: received here by a real HTTP server standing in for the collector.
import { createServer, type Server } from 'node:http'
import { connect } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { createTracing } from '../../lib/telemetry.js'
import { createFlowWorker } from '../../flows/worker.js'
import { quote } from '../../flows/orders/quote.js'
import type { Flow } from '../../flows/define.js'
import { buildGateway } from '../../server/gateway.js'
import { captureLogs, testConfig, waitForRoute } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort } from '../harness/process.js'

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
}

let nats: NatsServer
let collector: Server
const spans: OtlpSpan[] = []
let endpoint = ''

beforeAll(async () => {
  nats = await startNats()
  const port = await freePort()
  collector = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      const doc = JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
      for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans)
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => collector.listen(port, '127.0.0.1', resolve))
  endpoint = `http://127.0.0.1:${port}`
})

afterAll(async () => {
  await new Promise((r) => collector?.close(r))
  await nats?.stop()
})

describe('OpenTelemetry export', () => {
  it('exports the gateway span and each step span of a request in the trace of its traceparent', async () => {
    const config = testConfig(nats.url, { otelEndpoint: endpoint })
    const { log } = captureLogs('silent')
    const tracing = await createTracing(config, 'test')
    const nc = await connect({ servers: nats.url })
    const worker = await createFlowWorker(config, { nats: nc, log, tokens: createTokenService(config), tracing, flowDeps: { nats: nc, probes: {} } }, [quote as unknown as Flow])
    const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing, registry: new Registry() })
    await waitForRoute(gateway, 'POST', '/api/v1/orders/quote')
    const traceId = '0af7651916cd43dd8448eb211c80319c'
    const res = await gateway.app.inject({
      method: 'POST',
      url: '/api/v1/orders/quote',
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
      payload: { items: [{ sku: 'kettle', quantity: 1 }] },
    })
    expect(res.statusCode).toBe(200)
    await gateway.close()
    await worker.stop(1000)
    await nc.close()
    await tracing.shutdown() // flushes the batch to the collector

    const mine = spans.filter((s) => s.traceId === traceId)
    const names = mine.map((s) => s.name).sort()
    expect(names).toEqual(
      ['POST /api/v1/orders/quote', 'send api.v1.orders.quote', 'process api.v1.orders.quote', 'step applyCoupon', 'step convertCurrency', 'step priceItems'].sort(),
    )
    const byName = new Map(mine.map((s) => [s.name, s]))
    expect(byName.get('POST /api/v1/orders/quote')!.parentSpanId).toBe('b7ad6b7169203331')
    expect(byName.get('send api.v1.orders.quote')!.parentSpanId).toBe(byName.get('POST /api/v1/orders/quote')!.spanId)
    expect(byName.get('process api.v1.orders.quote')!.parentSpanId).toBe(byName.get('send api.v1.orders.quote')!.spanId)
    expect(byName.get('step priceItems')!.parentSpanId).toBe(byName.get('process api.v1.orders.quote')!.spanId)
  })
})
