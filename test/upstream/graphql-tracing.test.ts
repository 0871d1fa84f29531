// The server span of a GraphQL request carries the operation as OpenTelemetry's semantic conventions
// name it (`graphql.operation.type`, `graphql.operation.name`); the document (`graphql.document`)
// only on a route that asks for it, since documents may hold secrets. Exported over OTLP/HTTP to a
// real HTTP server standing in for the collector.
import { createServer, type Server } from 'node:http'
import { connect } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { createTracing } from '../../lib/telemetry.js'
import { buildGateway } from '../../server/gateway.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort } from '../harness/process.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { servicesFile } from './harness.js'
import { startGraphqlUpstream, type GraphqlUpstream } from './graphql-server.js'

interface OtlpSpan {
  traceId: string
  name: string
  attributes: Array<{ key: string; value: { stringValue?: string } }>
}

let nats: NatsServer
let gql: GraphqlUpstream
let collector: Server
const spans: OtlpSpan[] = []
let endpoint = ''

beforeAll(async () => {
  ;[nats, gql] = await Promise.all([startNats(), startGraphqlUpstream()])
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
  await gql?.stop()
  await nats?.stop()
})

describe('GraphQL spans', () => {
  it('name the operation on the server span; record the document only where the route says so', async () => {
    const file = servicesFile({
      upstreams: { gql: { targets: [{ url: gql.url }] } },
      routes: [
        { path: '/graphql', upstream: 'gql', auth: 'public', graphql: true },
        { path: '/recorded/graphql', upstream: 'gql', auth: 'public', graphql: { recordDocument: true } },
      ],
    })
    const config = testConfig(nats.url, { otelEndpoint: endpoint, servicesFile: file.path })
    const tracing = await createTracing(config, 'test')
    const nc = await connect({ servers: nats.url })
    const gateway = await buildGateway(config, { nats: nc, log: captureLogs('silent').log, tokens: createTokenService(config), tracing, registry: new Registry() })
    const secretQuery = 'query Login { echo(value: "s3cret-token") }'
    const traces = ['0af7651916cd43dd8448eb211c80319c', '1af7651916cd43dd8448eb211c80319c', '2af7651916cd43dd8448eb211c80319c']
    const send = (url: string, query: string, traceId: string) =>
      gateway.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-b7ad6b7169203331-01` }, payload: JSON.stringify({ query }) })
    expect((await send('/graphql', secretQuery, traces[0]!)).statusCode).toBe(200)
    expect((await send('/recorded/graphql', secretQuery, traces[1]!)).statusCode).toBe(200)
    expect((await send('/graphql', '{ hello }', traces[2]!)).statusCode).toBe(200)
    await gateway.close()
    await nc.close()
    await tracing.shutdown() // flushes the batch to the collector

    const attrs = (traceId: string, route = '/graphql') => {
      const span = spans.find((s) => s.traceId === traceId && s.name === `POST ${route}`)!
      return Object.fromEntries(span.attributes.filter((a) => a.key.startsWith('graphql.')).map((a) => [a.key, a.value.stringValue]))
    }
    expect(attrs(traces[0]!)).toEqual({ 'graphql.operation.type': 'query', 'graphql.operation.name': 'Login' })
    expect(attrs(traces[1]!, '/recorded/graphql')).toEqual({ 'graphql.operation.type': 'query', 'graphql.operation.name': 'Login', 'graphql.document': secretQuery })
    expect(attrs(traces[2]!)).toEqual({ 'graphql.operation.type': 'query' })
    expect(JSON.stringify(spans.filter((s) => s.traceId !== traces[1]))).not.toContain('s3cret-token')
  })
})
