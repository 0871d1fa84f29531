// One side of the gateway benchmark, run in its own process so each side has a core to itself
// the way it would in production: `bare` (plain Fastify), `gateway`, or `worker` (a trivial flow).
// A `variant` gives a gateway and its worker a flow of their own (the tracing scenarios), and the
// OTEL_* overrides turn tracing on in both.
import '../lib/v8-flags.js'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import { connect } from 'nats'
import { Registry } from 'prom-client'
import { createTokenService } from '../lib/auth.js'
import { parseConfig } from '../lib/config.js'
import { JSON_TYPE, successEnvelope } from '../lib/envelope.js'
import { createLogger, logDestination } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { createTracing, type Tracing } from '../lib/telemetry.js'
import { defineFlow, type Flow } from '../flows/define.js'
import { createFlowWorker } from '../flows/worker.js'
import { buildGateway } from '../server/gateway.js'
import { createEdgeParts } from '../server/edge/start.js'

const [role, natsUrl = '', portText = '0', extra = '{}', variant = ''] = process.argv.slice(2)
const port = Number(portText)
const overrides = JSON.parse(extra) as Record<string, unknown>
const config = parseConfig({ nodeEnv: 'test', natsUrl, port, logLevel: 'info', flowConcurrency: 256, ...overrides })
// Logging stays on, as in production, written to /dev/null so the terminal is not the bottleneck.
const log = createLogger(config, {}, logDestination('/dev/null'))

/** The trivial flow: one traced step returning a fixed item. */
function itemFlow(name: string, path: string): Flow {
  return defineFlow({
    name,
    input: Type.Object({ id: Type.String({ maxLength: 64 }) }, { additionalProperties: false }),
    output: Type.Object({ id: Type.String(), name: Type.String(), price: Type.Number() }),
    http: { method: 'GET', path },
    auth: 'public',
    async run(input, ctx) {
      return ctx.step('loadItem', () => ({ id: input.id, name: 'Coffee beans', price: 14.5 }))
    },
  }) as unknown as Flow
}

export const benchFlow = itemFlow('bench.item', '/bench/items/:id')
// The naive gateway's requests go to a worker of their own, so that each scenario's CPU column is
// its own worker's and neither worker's code is compiled for the other's traffic.
export const naiveFlow = itemFlow('bench.naive', '/bench/naive/:id')
/** Flows of the tracing scenarios, each served by its own traced worker. */
export const variantFlows: Record<string, Flow> = {
  traced100: itemFlow('bench.traced100', '/bench/traced100/:id'),
  traced1: itemFlow('bench.traced1', '/bench/traced1/:id'),
  traced1lite: itemFlow('bench.traced1lite', '/bench/traced1lite/:id'),
}
const variantFlow = variant ? variantFlows[variant] : undefined
if (variant && !variantFlow) throw new Error(`unknown variant ${variant}`)

let tracing: Tracing | undefined

async function main() {
  if (role === 'bare') {
    const app = Fastify({ logger: false })
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736'
    app.get('/api/v1/bench/items/:id', async (request, reply) => {
      const { id } = request.params as { id: string }
      return reply.type(JSON_TYPE).send(successEnvelope({ id, name: 'Coffee beans', price: 14.5 }, 200, trace))
    })
    await app.listen({ port, host: '127.0.0.1' })
  } else if (role === 'bare-logged') {
    // The same route as a typical Fastify service runs it: Fastify's own request logging (two lines
    // a request) to the same /dev/null destination as the gateway's, and its serializer for the body.
    const app = Fastify({ loggerInstance: log })
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736'
    app.get('/api/v1/bench/items/:id', async (request) => {
      const { id } = request.params as { id: string }
      return { success: true, status: 200, data: { id, name: 'Coffee beans', price: 14.5 }, traceId: trace }
    })
    await app.listen({ port, host: '127.0.0.1' })
  } else if (role === 'naive') {
    // The straightforward way to put Fastify in front of NATS, for scale: nats.js request() per
    // call, no edge validation, no headers, no logging. Served by a worker of its own (naive-worker).
    const nc = await connect({ servers: natsUrl })
    const app = Fastify({ logger: false })
    app.get('/api/v1/bench/items/:id', async (request, reply) => {
      const { id } = request.params as { id: string }
      const msg = await nc.request(naiveFlow.subject, JSON.stringify({ id }), { timeout: 5000 })
      return reply.type(JSON_TYPE).send(Buffer.from(msg.data))
    })
    await app.listen({ port, host: '127.0.0.1' })
  } else if (role === 'gateway') {
    // As server/main.ts connects: its role's inbox, and its key when the bench runs the locked-down bus.
    const nc = await connectNats(config, log, 'gateway')
    const registry = new Registry()
    tracing = await createTracing(config, 'gateway', { activeContext: false })
    // Edge parts as server/main.ts makes them; each feature on or off through the overrides.
    const edge = createEdgeParts(config, nc, log, registry)
    const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing, registry, edge })
    await gateway.app.listen({ port, host: '127.0.0.1' })
    const end = Date.now() + 10_000
    const path = `/api/v1${(variantFlow ?? benchFlow).http!.path.replace(':id', '1')}`
    while (!gateway.discovery.table().find('GET', path) && Date.now() < end) {
      await gateway.discovery.refresh()
      await new Promise((r) => setTimeout(r, 50))
    }
  } else if (role === 'worker' || role === 'naive-worker') {
    const nc = await connectNats(config, log, 'flows')
    const flows = [role === 'worker' ? (variantFlow ?? benchFlow) : naiveFlow]
    // With the context manager on, as a worker runs when the library instrumentations are loaded.
    tracing = await createTracing(config, 'flows', { activeContext: !overrides.noActiveContext })
    // Metrics on, as a worker runs in production.
    await createFlowWorker(config, { nats: nc, log, tokens: createTokenService(config), tracing, registry: new Registry(), flowDeps: { nats: nc, probes: {} } }, flows)
  } else {
    throw new Error(`unknown role ${role}`)
  }
  // The parent asks for CPU time before and after a run: CPU per request is steadier than req/s on a shared machine.
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage(), spans: tracing?.stats() })
  })
  process.send?.('ready')
  // A clean exit lets --cpu-prof write its profile.
  process.once('SIGTERM', () => process.exit(0))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
