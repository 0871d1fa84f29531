// The server span of a GraphQL request carries the operation as OpenTelemetry's semantic conventions
// name it (`graphql.operation.type`, `graphql.operation.name`); the document (`graphql.document`)
// only on a route that asks for it, since documents may hold secrets. Exported over OTLP/HTTP to a
// real receiver standing in for the collector.
import { connect } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { createTracing } from '../../lib/telemetry.js'
import { buildGateway } from '../../server/gateway.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { startOtlpReceiver, type OtlpReceiver } from '../harness/otlp.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { servicesFile } from './harness.js'
import { startGraphqlUpstream, type GraphqlUpstream } from './graphql-server.js'

let nats: NatsServer
let gql: GraphqlUpstream
let receiver: OtlpReceiver

beforeAll(async () => {
  ;[nats, gql, receiver] = await Promise.all([startNats(), startGraphqlUpstream(), startOtlpReceiver()])
})

afterAll(async () => {
  await receiver?.close()
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
    const config = testConfig(nats.url, { otelEndpoint: receiver.endpoint, servicesFile: file.path })
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
      const span = receiver.trace(traceId).find((s) => s.name === `POST ${route}`)!
      return Object.fromEntries(Object.entries(span.attributes).filter(([key]) => key.startsWith('graphql.')))
    }
    expect(attrs(traces[0]!)).toEqual({ 'graphql.operation.type': 'query', 'graphql.operation.name': 'Login' })
    expect(attrs(traces[1]!, '/recorded/graphql')).toEqual({ 'graphql.operation.type': 'query', 'graphql.operation.name': 'Login', 'graphql.document': secretQuery })
    expect(attrs(traces[2]!)).toEqual({ 'graphql.operation.type': 'query' })
    expect(JSON.stringify(receiver.spans.filter((s) => s.traceId !== traces[1]), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain('s3cret-token')
  })
})
