// A real GraphQL server for the GraphQL route tests: graphql-http's handler (the GraphQL-over-HTTP
// reference implementation) on node:http on a free port. It records the exact bytes each request
// brought, and can be told to fail before GraphQL sees a request (a 503), to test retries.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { createRequire } from 'node:module'
import { freePort } from '../harness/process.js'

// Both from Node's own CommonJS loading: graphql-http checks that the schema comes from the same
// copy of graphql as its own (the test runner would otherwise load graphql's ES module build here).
const load = createRequire(import.meta.url)
const { buildSchema } = load('graphql') as typeof import('graphql')
const { createHandler } = load('graphql-http') as typeof import('graphql-http')

export const SCHEMA = buildSchema(`
  type User { id: ID!, name: String, friend: User }
  input Filter { name: String }
  type Query { hello(name: String): String, user(id: ID!): User, echo(value: String, filter: Filter): String }
  type Mutation { bump: Int }
`)

export interface GraphqlUpstream {
  url: string
  /** Requests that reached the server: method, URL and the exact body bytes. */
  seen: Array<{ method: string; url: string; body: Buffer; headers: IncomingMessage['headers'] }>
  /** Mutations run. */
  bumps(): number
  /** Answer 503 (before GraphQL sees it) to every request while true. */
  failing: boolean
  stop(): Promise<void>
}

export async function startGraphqlUpstream(): Promise<GraphqlUpstream> {
  let bumps = 0
  const user = (id: string) => ({ id, name: `user ${id}`, friend: () => user(String(Number(id) + 1)) })
  const rootValue = {
    hello: ({ name }: { name?: string }) => `Hello ${name ?? 'world'}`,
    user: ({ id }: { id: string }) => user(id),
    echo: ({ value }: { value?: string }) => value ?? null,
    bump: () => ++bumps,
  }
  const handle = createHandler({ schema: SCHEMA, rootValue })
  const port = await freePort()
  const up: GraphqlUpstream = {
    url: `http://127.0.0.1:${port}`,
    seen: [],
    bumps: () => bumps,
    failing: false,
    stop: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      up.seen.push({ method: req.method!, url: req.url!, body, headers: req.headers })
      if (up.failing) return void res.writeHead(503, { 'content-type': 'text/plain' }).end('busy')
      handle({ url: req.url!, method: req.method!, headers: req.headers, body: body.toString('utf8'), raw: req, context: undefined }).then(
        ([text, init]) => res.writeHead(init.status, init.statusText, init.headers as Record<string, string>).end(text),
        () => res.writeHead(500).end(),
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return up
}
