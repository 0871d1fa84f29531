// One side of the proxy benchmark, each in its own process: `upstream` (a plain node:http service
// answering a small JSON), `http-proxy` (Fastify with @fastify/http-proxy in front of it), and
// `gateway` (Flowgate with a proxy route to it, logging on as in production); for the GraphQL
// scenario, `graphql-upstream` (graphql-http on node:http) and `graphql-gateway` (a GraphQL route to it);
// for the WebSocket scenario `ws-upstream` (a `ws` echo server), `ws-http-proxy` (@fastify/http-proxy
// with `websocket: true`) and `ws-gateway` (Flowgate with a WebSocket route to it).
import '../lib/v8-flags.js'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'
import { buildSchema } from 'graphql'
import { createHandler } from 'graphql-http/lib/use/http'
import { connect } from 'nats'
import { Registry } from 'prom-client'
import { WebSocketServer } from 'ws'
import { createTokenService } from '../lib/auth.js'
import { parseConfig } from '../lib/config.js'
import { createLogger, logDestination } from '../lib/logger.js'
import { disabledTracing } from '../lib/telemetry.js'
import { createEdgeParts } from '../server/edge/start.js'
import { buildGateway } from '../server/gateway.js'

const [role, port = '0', upstream = '', natsUrl = '', extra = '{}'] = process.argv.slice(2)
const BODY = JSON.stringify({ id: 42, name: 'Coffee beans', price: 14.5, tags: ['whole', 'arabica'] })
const PRODUCT = { id: '42', name: 'Coffee beans', price: 14.5, tags: ['whole', 'arabica'] }
const SCHEMA = buildSchema('type Product { id: ID!, name: String, price: Float, tags: [String] } type Query { product(id: ID!): Product }')

/** Flowgate with `services` as its services file, edge off, its config overridden by `extra`. */
async function startGateway(services: unknown) {
  const file = join(tmpdir(), `flowgate-bench-services-${process.pid}.json`)
  writeFileSync(file, JSON.stringify(services))
  const config = parseConfig({ nodeEnv: 'test', natsUrl, port: Number(port), logLevel: 'info', servicesFile: file, eventsEnabled: false, rateLimitEnabled: false, blocklistEnabled: false, ...JSON.parse(extra) })
  const log = createLogger(config, {}, logDestination('/dev/null'))
  const nc = await connect({ servers: natsUrl })
  const registry = new Registry()
  const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing: disabledTracing, registry, edge: createEdgeParts(config, nc, log, registry) })
  await gateway.app.listen({ port: Number(port), host: '127.0.0.1' })
}

async function main() {
  if (role === 'upstream') {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) })
      res.end(BODY)
    })
    server.keepAliveTimeout = 60_000
    await new Promise<void>((r) => server.listen(Number(port), '127.0.0.1', r))
  } else if (role === 'http-proxy') {
    const app = Fastify({ logger: false })
    await app.register(proxy, { upstream, prefix: '/api/products', rewritePrefix: '/products' })
    await app.listen({ port: Number(port), host: '127.0.0.1' })
  } else if (role === 'gateway') {
    await startGateway({ upstreams: { products: { targets: [{ url: `${upstream}/products` }] } }, routes: [{ path: '/api/products/*', upstream: 'products', stripPrefix: true, auth: 'public' }] })
  } else if (role === 'graphql-upstream') {
    const server = createServer(createHandler({ schema: SCHEMA, rootValue: { product: ({ id }: { id: string }) => ({ ...PRODUCT, id }) } }))
    server.keepAliveTimeout = 60_000
    await new Promise<void>((r) => server.listen(Number(port), '127.0.0.1', r))
  } else if (role === 'graphql-gateway') {
    await startGateway({
      upstreams: { catalog: { targets: [{ url: upstream }] } },
      routes: [
        { path: '/graphql', upstream: 'catalog', auth: 'public', graphql: true },
        { path: '/plain/*', upstream: 'catalog', auth: 'public', stripPrefix: true },
      ],
    })
  } else if (role === 'ws-http-proxy') {
    const app = Fastify({ logger: false })
    await app.register(proxy, { upstream, prefix: '/ws', rewritePrefix: '/', websocket: true })
    await app.listen({ port: Number(port), host: '127.0.0.1' })
  } else if (role === 'ws-upstream') {
    const wss = new WebSocketServer({ port: Number(port), host: '127.0.0.1', perMessageDeflate: false })
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
    await new Promise<void>((r) => wss.once('listening', r))
  } else if (role === 'ws-gateway') {
    await startGateway({ upstreams: { echo: { targets: [{ url: upstream }] } }, routes: [{ path: '/ws/*', upstream: 'echo', stripPrefix: true, auth: 'public', websocket: true }] })
  } else {
    throw new Error(`unknown role ${role}`)
  }
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() })
  })
  process.send?.('ready')
  process.once('SIGTERM', () => process.exit(0))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
