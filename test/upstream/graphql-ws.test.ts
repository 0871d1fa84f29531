// GraphQL over WebSocket (the graphql-transport-ws subprotocol) through a WebSocket proxy route:
// graphql-ws's own server (on `ws`) upstream and its own client through the gateway, with the
// token carried in a subprotocol as a browser would.
import { createRequire } from 'node:module'
import { createClient, type Client } from 'graphql-ws'
import { useServer } from 'graphql-ws/use/ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createTokenService } from '../../lib/auth.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { startProxyGateway, type ProxyGateway } from './harness.js'
import { rawUpgrade, startWsUpstream, upgradeHeaders, wsUrl, type WsUpstream } from './ws-harness.js'

// graphql has no `exports` map: Node gives graphql-ws its CommonJS build, and a schema must come
// from the same copy (graphql refuses one from "another module or realm").
const { GraphQLInt, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, GraphQLString } = createRequire(import.meta.url)('graphql') as typeof import('graphql')

let nats: NatsServer
let gw: ProxyGateway
let up: WsUpstream
const sink = captureLogs('info')
const clients: Client[] = []

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({
    name: 'Query',
    fields: { hello: { type: GraphQLString, args: { name: { type: GraphQLString } }, resolve: (_s, args: { name?: string }) => `hello ${args.name ?? 'world'}` } },
  }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      countdown: {
        type: new GraphQLNonNull(GraphQLInt),
        args: { from: { type: new GraphQLNonNull(GraphQLInt) } },
        subscribe: async function* (_s: unknown, args: { from: number }) {
          for (let i = args.from; i >= 0; i--) {
            await new Promise((r) => setTimeout(r, 5))
            yield { countdown: i }
          }
        },
      },
    },
  }),
})

beforeAll(async () => {
  nats = await startNats()
  up = await startWsUpstream('graphql', () => {}, { handleProtocols: (p) => (p.has('graphql-transport-ws') ? 'graphql-transport-ws' : false) })
  // graphql-ws serves the sockets of the upstream's ws server.
  useServer({ schema }, up.wss)
  gw = await startProxyGateway(
    nats.url,
    { upstreams: { graphql: { targets: [{ url: up.url }] } }, routes: [{ path: '/graphql', upstream: 'graphql', websocket: true }] },
    sink.log,
    { wsAuthSubprotocolPrefix: 'bearer.' },
  )
})
afterAll(async () => {
  for (const c of clients) await c.dispose()
  await gw?.stop()
  await up?.stop()
  await nats?.stop()
})

function client(token: string | undefined): Client {
  const c = createClient({
    url: wsUrl(gw.base, '/graphql'),
    lazy: true,
    retryAttempts: 0,
    // Browsers cannot set Authorization on a WebSocket: the token rides as a second subprotocol.
    webSocketImpl: class extends WebSocket {
      constructor(url: string, protocols: string | string[]) {
        super(url, [...(Array.isArray(protocols) ? protocols : [protocols]), ...(token ? [`bearer.${token}`] : [])])
      }
    },
  })
  clients.push(c)
  return c
}

function run<T>(c: Client, query: string): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = []
    c.subscribe<T>({ query }, { next: (v) => out.push(v.data as T), error: reject, complete: () => resolve(out) })
  })
}

describe('GraphQL over WebSocket through the gateway', () => {
  it('runs queries and streams a subscription with graphql-ws on both ends', async () => {
    const token = createTokenService(testConfig(nats.url)).sign({ sub: 'gql-user', role: 'customer' }).token
    const c = client(token)
    expect(await run(c, '{ hello(name: "flowgate") }')).toEqual([{ hello: 'hello flowgate' }])
    expect(await run(c, 'subscription { countdown(from: 5) }')).toEqual([5, 4, 3, 2, 1, 0].map((n) => ({ countdown: n })))
    expect(up.seen.at(-1)!.headers['sec-websocket-protocol']).toBe('graphql-transport-ws')
    expect(up.seen.at(-1)!.headers.authorization).toBeUndefined()
  })

  it('refuses the upgrade without a token: 401 before any upgrade, the client\'s operation fails', async () => {
    const before = up.seen.length
    const refused = await rawUpgrade(Number(new URL(gw.base).port), '/graphql', upgradeHeaders({ 'Sec-WebSocket-Protocol': 'graphql-transport-ws' }))
    expect(refused.status).toBe(401)
    expect(JSON.parse(refused.body)).toMatchObject({ errorCode: 'UNAUTHORIZED' })
    await expect(run(client(undefined), '{ hello }')).rejects.toBeDefined()
    expect(up.seen.length).toBe(before)
  })
})
