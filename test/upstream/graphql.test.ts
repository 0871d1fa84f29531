// GraphQL routes against a real GraphQL server (graphql-http on node:http) behind a real gateway with
// its edge and events on: answers byte-identical to direct, the operation in metrics, the log line
// and the completion event, the route's limits, every malformed request answered in the
// GraphQL-over-HTTP shape without reaching the server, and retries that never repeat a mutation.
import { createClient } from 'graphql-http'
import { connect, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeEvent, type RequestCompleted } from '../../schemas/events.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { captureLogs } from '../harness/stack.js'
import { rawCall, startProxyGateway, type ProxyGateway } from './harness.js'
import { startGraphqlUpstream, type GraphqlUpstream } from './graphql-server.js'

let nats: NatsServer
let gql: GraphqlUpstream
let bad: GraphqlUpstream
let gw: ProxyGateway
let nc: NatsConnection
const events: RequestCompleted[] = []
const sink = captureLogs('info')

const GQL_RESPONSE = 'application/graphql-response+json'
const json = { 'content-type': 'application/json' }
const strict = { maxDepth: 8, maxAliases: 20, maxRootFields: 30, introspection: false, maxDocumentBytes: 100_000 }

beforeAll(async () => {
  nats = await startNats()
  ;[gql, bad] = await Promise.all([startGraphqlUpstream(), startGraphqlUpstream()])
  bad.failing = true
  const pair = {
    targets: [{ url: bad.url }, { url: gql.url }],
    retry: { retries: 1, backoffBaseMs: 0, backoffMaxMs: 0 },
    breaker: { enabled: false },
    outlier: { consecutiveFailures: 1000 },
  }
  gw = await startProxyGateway(
    nats.url,
    {
      upstreams: { gql: { targets: [{ url: gql.url }] }, pair, pair2: pair },
      routes: [
        { path: '/graphql', upstream: 'gql', auth: 'public', graphql: strict, bodyLimitBytes: 200_000 },
        { path: '/open/graphql', upstream: 'gql', auth: 'public', graphql: true, bodyLimitBytes: 4 * 1024 * 1024 },
        { path: '/small/graphql', upstream: 'gql', auth: 'public', graphql: true, bodyLimitBytes: 1024 },
        { path: '/named/graphql', upstream: 'gql', auth: 'public', graphql: { maxOperationNames: 2 } },
        { path: '/retry/graphql', upstream: 'pair', auth: 'public', graphql: true, retryNonIdempotent: true },
        { path: '/noretry/graphql', upstream: 'pair2', auth: 'public', graphql: { retryQueries: false } },
      ],
    },
    sink.log,
  )
  nc = await connect({ servers: nats.url })
  nc.subscribe('gateway.request.completed', {
    callback: (_err, msg) => {
      const e = decodeEvent(msg.data)
      if (e.ok && e.value.kind === 'request.completed') events.push(e.value)
    },
  })
})

afterAll(async () => {
  await nc?.close()
  await gw?.stop()
  await Promise.all([gql?.stop(), bad?.stop()])
  await nats?.stop()
})

async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const res = await fetch(`${gw.base}${path}`, { method: 'POST', headers: { ...json, ...headers }, body })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

async function get(base: string, path: string, params: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}?${new URLSearchParams(params)}`, { headers })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

/** Sends a request the gateway must refuse itself: the upstream sees nothing; returns the answer. */
async function refused(send: () => Promise<{ status: number; headers: Headers; text: string }>) {
  const before = gql.seen.length
  const res = await send()
  expect(gql.seen.length).toBe(before)
  const body = JSON.parse(res.text) as { errors: Array<{ message: string; extensions: { code: string } }> }
  expect(Object.keys(body)).toEqual(['errors'])
  expect(body.errors).toHaveLength(1)
  return { ...res, error: body.errors[0]! }
}

const metricsText = async () => (await fetch(`${gw.base}/metrics`)).text()
const series = (text: string, name: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`))
    .sort()

describe('GraphQL routes: forwarding', () => {
  it("a real client's answers through the gateway are byte-identical to the server's, and the bytes sent reach it as they were", async () => {
    const body = '{ "query" : "query Hello($n: String) { hello(name: $n) }",\n "variables": {"n": "Zoë ☕"}, "operationName":"Hello", "extensions": {"x": 1} }'
    const direct = await fetch(`${gql.url}/graphql`, { method: 'POST', headers: json, body })
    const before = gql.seen.length
    const through = await post('/graphql', body)
    expect(through.status).toBe(direct.status)
    expect(through.headers.get('content-type')).toBe(direct.headers.get('content-type'))
    expect(through.text).toBe(await direct.text())
    expect(through.text).toBe('{"data":{"hello":"Hello Zoë ☕"}}')
    expect(gql.seen.length).toBe(before + 1)
    expect(gql.seen.at(-1)!.body.equals(Buffer.from(body))).toBe(true)

    // graphql-http's own client (fetch, application/graphql-response+json) through the gateway.
    const results: unknown[] = []
    for (const url of [`${gql.url}/graphql`, `${gw.base}/graphql`]) {
      const client = createClient({ url, fetchFn: fetch })
      results.push(
        await new Promise((resolve, reject) => {
          let value: unknown
          client.subscribe({ query: '{ user(id: "1") { id name friend { name } } }' }, { next: (v) => (value = v), error: reject, complete: () => resolve(value) })
        }),
      )
    }
    expect(results[1]).toEqual(results[0])
    expect(results[1]).toEqual({ data: { user: { id: '1', name: 'user 1', friend: { name: 'user 2' } } } })
  })

  it('GET with the query string is forwarded as it came; GET without GraphQL parameters passes through', async () => {
    const params = { query: 'query Who { user(id: "7") { name } }', operationName: 'Who' }
    const direct = await get(gql.url, '/graphql', params, { accept: GQL_RESPONSE })
    const through = await get(gw.base, '/graphql', params, { accept: GQL_RESPONSE })
    expect(through.status).toBe(200)
    expect(through.text).toBe(direct.text)
    expect(through.headers.get('content-type')).toBe(direct.headers.get('content-type'))
    expect(gql.seen.at(-1)!.url).toBe(`/graphql?${new URLSearchParams(params)}`)
    // No query at all: graphql-http answers it (400), the gateway only forwards.
    const bare = await fetch(`${gw.base}/graphql`)
    expect(bare.status).toBe(400)
    expect(gql.seen.at(-1)!.url).toBe('/graphql')
  })

  it('labels metrics per operation (names bounded per route), the log line and the completion event', async () => {
    for (const name of ['First', 'Second', 'Third', 'Fourth']) {
      expect((await post('/named/graphql', JSON.stringify({ query: `query ${name} { hello }` }))).status).toBe(200)
    }
    expect((await post('/named/graphql', JSON.stringify({ query: '{ hello }' }))).status).toBe(200)
    expect((await post('/named/graphql', JSON.stringify({ query: 'mutation Bump { bump }' }))).status).toBe(200)
    const refusedOne = await post('/named/graphql', JSON.stringify({ query: '{ hello' }))
    expect(refusedOne.status).toBe(400)
    const text = await metricsText()
    const labels = (type: string, name: string) => `upstream="gql",route="/named/graphql",operation_type="${type}",operation_name="${name}"`
    expect(series(text, 'flowgate_graphql_requests_total').filter((l) => l.includes('/named/graphql'))).toEqual(
      [
        `flowgate_graphql_requests_total{${labels('query', 'First')},outcome="ok"} 1`,
        `flowgate_graphql_requests_total{${labels('query', 'Second')},outcome="ok"} 1`,
        `flowgate_graphql_requests_total{${labels('query', 'other')},outcome="ok"} 2`,
        `flowgate_graphql_requests_total{${labels('query', '(anonymous)')},outcome="ok"} 1`,
        `flowgate_graphql_requests_total{${labels('(unknown)', '(unknown)')},outcome="refused"} 1`,
      ]
        .concat([`flowgate_graphql_requests_total{${labels('mutation', 'other')},outcome="ok"} 1`])
        .sort(),
    )
    expect(series(text, 'flowgate_graphql_request_duration_seconds_count').filter((l) => l.includes('/named/graphql'))).toEqual(
      [
        `flowgate_graphql_request_duration_seconds_count{${labels('query', 'First')}} 1`,
        `flowgate_graphql_request_duration_seconds_count{${labels('query', 'Second')}} 1`,
        `flowgate_graphql_request_duration_seconds_count{${labels('query', 'other')}} 2`,
        `flowgate_graphql_request_duration_seconds_count{${labels('query', '(anonymous)')}} 1`,
        `flowgate_graphql_request_duration_seconds_count{${labels('mutation', 'other')}} 1`,
      ].sort(),
    )

    const res = await post('/graphql', JSON.stringify({ query: 'query Traced { hello }' }))
    const requestId = res.headers.get('x-request-id')!
    const event = await waitForEvent(requestId)
    expect(event).toMatchObject({ route: '/graphql', method: 'POST', status: 200, operationType: 'query', operationName: 'Traced' })
    const line = sink.lines.find((l) => l.request_id === requestId && l.msg === 'request completed')
    expect(line).toMatchObject({ route: '/graphql', status: 200, graphql_operation_type: 'query', graphql_operation_name: 'Traced' })
    const anonymous = await post('/graphql', JSON.stringify({ query: '{ hello }' }))
    const anonymousEvent = await waitForEvent(anonymous.headers.get('x-request-id')!)
    expect(anonymousEvent.operationType).toBe('query')
    expect(anonymousEvent).not.toHaveProperty('operationName')
  })

  it('__proto__ as an operation name and in variables passes through unchanged, and pollutes nothing', async () => {
    const body = '{"query":"query __proto__($v: String) { echo(value: $v) }","operationName":"__proto__","variables":{"__proto__":{"polluted":"yes"},"v":"ok\\u0000nul"}}'
    const res = await post('/open/graphql', body)
    expect(res.status).toBe(200)
    expect(JSON.parse(res.text)).toEqual({ data: { echo: 'ok\u0000nul' } })
    expect(gql.seen.at(-1)!.body.toString()).toBe(body)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(series(await metricsText(), 'flowgate_graphql_requests_total')).toContain(
      'flowgate_graphql_requests_total{upstream="gql",route="/open/graphql",operation_type="query",operation_name="__proto__",outcome="ok"} 1',
    )
  })

  it('introspection passes on a route that allows it', async () => {
    const res = await post('/open/graphql', JSON.stringify({ query: '{ __schema { queryType { name } } }' }))
    expect(JSON.parse(res.text)).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } })
  })
})

describe('GraphQL routes: refused at the gateway, in the GraphQL-over-HTTP shape', () => {
  it('a document that does not parse: 400, as application/graphql-response+json to a legacy client too', async () => {
    for (const accept of [GQL_RESPONSE, 'application/json', 'text/html']) {
      const res = await refused(() => post('/graphql', JSON.stringify({ query: '{ hello' }), { accept }))
      expect(res.status).toBe(400)
      expect(res.headers.get('content-type')).toBe(`${GQL_RESPONSE}; charset=utf-8`)
      expect(res.error.extensions.code).toBe('GRAPHQL_PARSE_FAILED')
      expect(res.error.message).toMatch(/^Syntax Error: Expected Name, found <EOF>/)
      expect(res.headers.get('x-trace-id')).toMatch(/^[0-9a-f]{32}$/)
    }
  })

  it('a 10,000-deep query and 10,000 aliases are refused without parsing them (no stack overflow)', async () => {
    const deep = `{ ${'user(id: "1") { friend { '.repeat(5000)}name${' } }'.repeat(5000)} }`
    const r1 = await refused(() => post('/open/graphql', JSON.stringify({ query: deep }), { accept: GQL_RESPONSE }))
    expect(r1.status).toBe(400)
    expect(r1.error.message).toMatch(/tokens|deeper than 256/)
    const lists = `{ echo(value: ${'['.repeat(10_000)}"x"${']'.repeat(10_000)}) }`
    const r2 = await refused(() => post('/open/graphql', JSON.stringify({ query: lists }), { accept: GQL_RESPONSE }))
    expect(r2.error.message).toBe('The document nests brackets deeper than 256 levels')
    const aliases = `{ ${Array.from({ length: 10_000 }, (_, i) => `a${i}: hello`).join(' ')} }`
    const r3 = await refused(() => post('/open/graphql', JSON.stringify({ query: aliases }), { accept: GQL_RESPONSE }))
    expect(r3.status).toBe(400)
    expect(r3.error.message).toBe('Syntax Error: Document contains more than 15000 tokens. Parsing aborted.')
    // The gateway still serves.
    expect((await post('/open/graphql', JSON.stringify({ query: '{ hello }' }))).status).toBe(200)
  })

  it("the route's limits: depth, aliases, root fields, introspection, fragment cycles", async () => {
    const nest = (n: number) => `{ ${'user(id: "1") { '.repeat(1)}${'friend { '.repeat(n - 2)}name${' }'.repeat(n - 1)} }`
    expect((await post('/graphql', JSON.stringify({ query: nest(8) }))).status).toBe(200)
    const deep = await refused(() => post('/graphql', JSON.stringify({ query: nest(9) }), { accept: GQL_RESPONSE }))
    expect(deep.status).toBe(422)
    expect(deep.error).toEqual({ message: 'The operation is 9 fields deep; at most 8 are allowed', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })
    // Depth through fragments counts too.
    const viaFragment = `query { user(id: "1") { ...F } } fragment F on User { ${'friend { '.repeat(7)}name${' }'.repeat(7)} }`
    expect((await refused(() => post('/graphql', JSON.stringify({ query: viaFragment })))).error.message).toMatch(/9 fields deep/)
    const aliases = `{ ${Array.from({ length: 21 }, (_, i) => `a${i}: hello`).join(' ')} }`
    expect((await refused(() => post('/graphql', JSON.stringify({ query: aliases })))).error.message).toBe('The operation has more than 20 aliases')
    // A fragment spread many times counts at each spread.
    const spread = `{ ${Array.from({ length: 11 }, (_, i) => `u${i}: user(id: "1") { ...Two }`).join(' ')} } fragment Two on User { x: name }`
    expect((await refused(() => post('/graphql', JSON.stringify({ query: spread })))).error.message).toBe('The operation has more than 20 aliases')
    const roots = `{ ${Array.from({ length: 31 }, () => 'hello').join(' ')} }`
    expect((await refused(() => post('/graphql', JSON.stringify({ query: roots })))).error.message).toBe('The operation asks for more than 30 root fields')
    for (const q of ['{ __schema { types { name } } }', '{ __type(name: "User") { name } }', '{ ...I } fragment I on Query { __schema { queryType { name } } }']) {
      expect((await refused(() => post('/graphql', JSON.stringify({ query: q }), { accept: GQL_RESPONSE }))).error.message).toBe('Introspection is disabled on this route')
    }
    expect((await post('/graphql', JSON.stringify({ query: '{ __typename }' }))).status).toBe(200)
    const cycle = 'query { ...A } fragment A on Query { ...B } fragment B on Query { hello ...A }'
    expect((await refused(() => post('/graphql', JSON.stringify({ query: cycle })))).error.message).toBe('Cannot spread fragment "A" within itself.')
    // A document refused by a limit is counted under its operation.
    await refused(() => post('/graphql', JSON.stringify({ query: `query TooDeep ${nest(9)}` })))
    expect(series(await metricsText(), 'flowgate_graphql_requests_total')).toContain(
      'flowgate_graphql_requests_total{upstream="gql",route="/graphql",operation_type="query",operation_name="TooDeep",outcome="refused"} 1',
    )
  })

  it('operation choice: several operations need operationName; an unknown one or a 1 MB one is refused', async () => {
    const two = 'query A { hello } query B { echo(value: "b") }'
    const none = await refused(() => post('/graphql', JSON.stringify({ query: two }), { accept: GQL_RESPONSE }))
    expect(none.error).toEqual({ message: 'Must provide operation name if query contains multiple operations.', extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } })
    expect(none.status).toBe(422)
    const unknown = await refused(() => post('/graphql', JSON.stringify({ query: two, operationName: 'C' })))
    expect(unknown.error.message).toBe('Unknown operation named "C".')
    const chosen = await post('/graphql', JSON.stringify({ query: two, operationName: 'B' }))
    expect(JSON.parse(chosen.text)).toEqual({ data: { echo: 'b' } })
    const huge = await refused(() => post('/open/graphql', JSON.stringify({ query: '{ hello }', operationName: 'a'.repeat(1024 * 1024) }), { accept: GQL_RESPONSE }))
    expect(huge.status).toBe(422)
    expect(huge.error).toEqual({ message: '"operationName" must be a GraphQL name of at most 128 characters', extensions: { code: 'INVALID_REQUEST' } })
    expect(huge.text.length).toBeLessThan(300)
  })

  it('a mutation over GET: 405 with Allow: POST; the same over POST runs', async () => {
    const before = gql.bumps()
    const res = await refused(() => get(gw.base, '/graphql', { query: 'mutation { bump }' }, { accept: GQL_RESPONSE }))
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('POST')
    expect(res.error.extensions.code).toBe('METHOD_NOT_ALLOWED')
    expect(gql.bumps()).toBe(before)
    expect(JSON.parse((await post('/graphql', JSON.stringify({ query: 'mutation { bump }' }))).text)).toEqual({ data: { bump: before + 1 } })
  })

  it('a body that is not JSON: 400; a request that is not well formed: 422; whatever the Accept', async () => {
    const notJson: Array<string | Buffer> = ['not json', Buffer.from('{"query":"{ hello\u0000 }"}'), '{"query":']
    for (const body of notJson) {
      const res = await refused(() => post('/graphql', body, { accept: 'application/json' }))
      expect([res.status, res.error.message, res.error.extensions.code]).toEqual([400, 'The body is not JSON', 'BAD_REQUEST'])
    }
    const cases: Array<[string | Buffer, string]> = [
      ['[{"query":"{ hello }"}]', 'Batched requests (a JSON array) are not supported'],
      ['"{ hello }"', 'The body must be a JSON object'],
      ['{"query":42}', 'A GraphQL request needs a "query" string'],
      ['{"query":{"__proto__":"x"}}', 'A GraphQL request needs a "query" string'],
      ['{"variables":{}}', 'A GraphQL request needs a "query" string'],
      ['{"query":"{ hello }","query":"{ __schema { description } }"}', '"query" is given more than once'],
      ['{"query":"{ hello }","variables":[1]}', '"variables" must be an object'],
      ['{"query":"{ hello }","variables":"{}"}', '"variables" must be an object'],
      ['{"query":"{ hello }","extensions":7}', '"extensions" must be an object'],
      ['{"query":"{ hello }","operationName":7}', '"operationName" must be a string'],
      ['{"query":"{ hello }","operationName":"bad name"}', '"operationName" must be a GraphQL name of at most 128 characters'],
    ]
    for (const [body, message] of cases) {
      for (const accept of [GQL_RESPONSE, 'application/json']) {
        const res = await refused(() => post('/graphql', body, { accept }))
        expect([res.status, res.error.message, res.error.extensions.code]).toEqual([422, message, 'INVALID_REQUEST'])
      }
    }
    // NUL escaped inside the document is the parser's to refuse.
    const nul = await refused(() => post('/graphql', JSON.stringify({ query: '{ hello\u0000 }' }), { accept: GQL_RESPONSE }))
    expect(nul.error).toMatchObject({ message: 'Syntax Error: Unexpected character: U+0000.', extensions: { code: 'GRAPHQL_PARSE_FAILED' } })
    const type = await refused(() => post('/graphql', '{"query":"{ hello }"}', { 'content-type': 'text/plain' }))
    expect([type.status, type.error.extensions.code]).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE'])
    const utf16 = await refused(() => post('/graphql', '{"query":"{ hello }"}', { 'content-type': 'application/json; charset=utf-16' }))
    expect([utf16.status, utf16.error.message]).toEqual([415, 'Send the GraphQL request as application/json in UTF-8'])
    expect((await post('/graphql', '{"query":"{ hello }"}', { 'content-type': 'application/json;charset=utf-8' })).status).toBe(200)
    const inUrl = await refused(() => post('/graphql?query=%7B__schema%7Bdescription%7D%7D', '{"query":"{ hello }"}'))
    expect([inUrl.status, inUrl.error.message]).toEqual([422, 'A POST carries its GraphQL parameters in the body, not the URL'])
    const twice = await refused(() => fetch(`${gw.base}/graphql?query=%7Bhello%7D&query=%7B__schema%7Bdescription%7D%7D`).then(async (r) => ({ status: r.status, headers: r.headers, text: await r.text() })))
    expect([twice.status, twice.error.message]).toEqual([422, '"query" is given more than once'])
    const vars = await refused(() => get(gw.base, '/graphql', { query: '{ hello }', variables: '[1]' }))
    expect([vars.status, vars.error.message]).toEqual([422, '"variables" must be a JSON-encoded object'])
  })

  it('a body past the route limit: 413 in the GraphQL shape, declared or chunked, the rest left unread', async () => {
    const big = JSON.stringify({ query: `{ hello } # ${'x'.repeat(5000)}` })
    const declared = await refused(() => post('/small/graphql', big, { accept: GQL_RESPONSE }))
    expect(declared.status).toBe(413)
    expect(declared.error).toEqual({ message: 'Request body is larger than 1024 bytes', extensions: { code: 'PAYLOAD_TOO_LARGE' } })
    expect(declared.headers.get('connection')).toBe('close')
    const before = gql.seen.length
    const chunked = await rawCall(gw.base, '/small/graphql', { method: 'POST', headers: { ...json, 'transfer-encoding': 'chunked' }, body: big })
    expect(chunked.status).toBe(413)
    expect(JSON.parse(chunked.text)).toEqual({ errors: [{ message: 'Request body is larger than 1024 bytes', extensions: { code: 'PAYLOAD_TOO_LARGE' } }] })
    expect(gql.seen.length).toBe(before)
    // Under the limit, a chunked body is read whole and sent on with its length.
    const small = JSON.stringify({ query: '{ hello }' })
    const ok = await rawCall(gw.base, '/small/graphql', { method: 'POST', headers: { ...json, 'transfer-encoding': 'chunked' }, body: small })
    expect([ok.status, ok.text]).toEqual([200, '{"data":{"hello":"Hello world"}}'])
    expect(gql.seen.at(-1)!.body.toString()).toBe(small)
    expect(gql.seen.at(-1)!.headers['content-length']).toBe(String(small.length))
    // The document's own limit (maxDocumentBytes), inside a body the route takes.
    const doc = await refused(() => post('/graphql', JSON.stringify({ query: `{ hello } # ${'x'.repeat(100_000)}` })))
    expect([doc.status, doc.error.message]).toEqual([413, 'The document is larger than 100000 bytes'])
  })
})

describe('GraphQL routes: retries', () => {
  it('a query sent by POST is retried on another target; a mutation never is, even with retryNonIdempotent', async () => {
    const sent = () => bad.seen.length + gql.seen.length
    let start = sent()
    const queries = await Promise.all(Array.from({ length: 4 }, () => post('/retry/graphql', JSON.stringify({ query: '{ hello }' }))))
    expect(queries.map((q) => q.status)).toEqual([200, 200, 200, 200])
    const retried = sent() - start - 4
    expect(retried).toBeGreaterThanOrEqual(1)
    expect(bad.seen.slice(-retried).every((s) => s.body.toString() === '{"query":"{ hello }"}')).toBe(true)

    start = sent()
    const badBefore = bad.seen.length
    const bumps = gql.bumps()
    const mutations = []
    for (let i = 0; i < 4; i++) mutations.push(await post('/retry/graphql', JSON.stringify({ query: 'mutation { bump }' })))
    expect(sent() - start).toBe(4)
    const failed = mutations.filter((m) => m.status === 503).length
    expect(failed).toBe(bad.seen.length - badBefore)
    expect(failed).toBeGreaterThanOrEqual(1)
    expect(gql.bumps() - bumps).toBe(4 - failed)
  })

  it('retryQueries: false sends a POST query once', async () => {
    const start = bad.seen.length + gql.seen.length
    const answers = []
    for (let i = 0; i < 4; i++) answers.push((await post('/noretry/graphql', JSON.stringify({ query: '{ hello }' }))).status)
    expect(bad.seen.length + gql.seen.length - start).toBe(4)
    expect(answers.filter((s) => s === 503).length).toBeGreaterThanOrEqual(1)
    expect(series(await metricsText(), 'flowgate_graphql_requests_total').filter((l) => l.includes('/noretry/graphql'))).toEqual(
      [
        `flowgate_graphql_requests_total{upstream="pair2",route="/noretry/graphql",operation_type="query",operation_name="(anonymous)",outcome="ok"} ${answers.filter((s) => s === 200).length}`,
        `flowgate_graphql_requests_total{upstream="pair2",route="/noretry/graphql",operation_type="query",operation_name="(anonymous)",outcome="server_error"} ${answers.filter((s) => s === 503).length}`,
      ].sort(),
    )
  })
})

async function waitForEvent(requestId: string): Promise<RequestCompleted> {
  const end = Date.now() + 10_000
  for (;;) {
    const e = events.find((x) => x.requestId === requestId)
    if (e) return e
    if (Date.now() > end) throw new Error(`no request.completed event for ${requestId}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
