// The GraphQL scenario of `npm run bench:proxy`: the same GraphQL query (POST, JSON, a named operation
// with variables) against graphql-http on node:http directly, through a Flowgate GraphQL route and
// through a plain proxy route of the same gateway (the same POST forwarded unread: what the GraphQL
// route adds is the difference), edge off, log line on, in rounds side by side; each ratio is the
// median of the per-round ratios.
import type autocannon from 'autocannon'
import type { Result } from './proxy.js'

export const GRAPHQL_BODY = JSON.stringify({ query: 'query Product($id: ID!) { product(id: $id) { id name price tags } }', operationName: 'Product', variables: { id: '42' } })
const REQUEST: Partial<autocannon.Options> = { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' }, body: GRAPHQL_BODY }

export interface ScenarioDeps {
  start(name: string, args: string[]): Promise<void>
  load(url: string, measured: string[], durationSec: number, request?: Partial<autocannon.Options>): Promise<Result>
  freePort(): Promise<number>
  natsUrl: string
  rounds: number
  roundSec: number
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export async function graphqlScenario(d: ScenarioDeps): Promise<void> {
  const [upPort, gwPort] = [await d.freePort(), await d.freePort()]
  await d.start('graphql-upstream', ['graphql-upstream', String(upPort)])
  const upstream = `http://127.0.0.1:${upPort}`
  await d.start('graphql-gateway', ['graphql-gateway', String(gwPort), upstream, d.natsUrl])
  const urls = { direct: `${upstream}/graphql`, gateway: `http://127.0.0.1:${gwPort}/graphql`, plain: `http://127.0.0.1:${gwPort}/plain/graphql` }
  const answers: string[] = []
  for (const url of Object.values(urls)) {
    const res = await fetch(url, { method: 'POST', headers: REQUEST.headers as Record<string, string>, body: GRAPHQL_BODY })
    answers.push(await res.text())
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${answers.at(-1)}`)
    await d.load(url, [], 2, REQUEST) // warm-up: JIT, keep-alive pools
  }
  if (new Set(answers).size !== 1) throw new Error(`the answers differ: ${answers.join(' / ')}`)
  const rounds: Array<{ direct: Result; gateway: Result; plain: Result }> = []
  for (let i = 0; i < d.rounds; i++) {
    const direct = await d.load(urls.direct, ['graphql-upstream'], d.roundSec, REQUEST)
    const gateway = await d.load(urls.gateway, ['graphql-gateway', 'graphql-upstream'], d.roundSec, REQUEST)
    const plain = await d.load(urls.plain, ['graphql-gateway', 'graphql-upstream'], d.roundSec, REQUEST)
    rounds.push({ direct, gateway, plain })
    console.log(`  GraphQL round ${i + 1}: direct ${direct.rps.toFixed(0)}, GraphQL route ${gateway.rps.toFixed(0)}, plain proxy route ${plain.rps.toFixed(0)} req/s`)
  }
  const pick = (k: 'direct' | 'gateway' | 'plain') => {
    const rs = rounds.map((r) => r[k])
    const cpu = Object.keys(rs[0]!.cpuUs).map((n) => `${n} ${median(rs.map((r) => r.cpuUs[n]!)).toFixed(0)}`)
    return { rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), errors: rs.reduce((n, r) => n + r.errors, 0), cpu: cpu.join(', ') }
  }
  const ratio = median(rounds.map((r) => r.gateway.rps / r.direct.rps))
  const plainRatio = median(rounds.map((r) => r.plain.rps / r.direct.rps))
  console.log(`\n${'GraphQL query (POST)'.padEnd(26)} ${'req/s'.padStart(8)} ${'p50/p99 ms'.padStart(11)} ${'× direct'.padStart(9)}  errors  CPU µs/request`)
  const rows = [
    ['direct to graphql-http', pick('direct'), '1.00'],
    ['Flowgate GraphQL route', pick('gateway'), ratio.toFixed(2)],
    ['  plain proxy route', pick('plain'), plainRatio.toFixed(2)],
  ] as const
  for (const [name, r, x] of rows) {
    console.log(`${name.padEnd(26)} ${r.rps.toFixed(0).padStart(8)} ${`${r.p50}/${r.p99}`.padStart(11)} ${x.padStart(9)}  ${String(r.errors).padStart(6)}  ${r.cpu}`)
  }
  console.log(`\nFlowgate GraphQL route / direct: ${ratio.toFixed(2)}× (per round: ${rounds.map((r) => (r.gateway.rps / r.direct.rps).toFixed(2)).join(' ')})`)
  console.log(`GraphQL route / plain proxy route: ${median(rounds.map((r) => r.gateway.rps / r.plain.rps)).toFixed(2)}× (per round: ${rounds.map((r) => (r.gateway.rps / r.plain.rps).toFixed(2)).join(' ')})`)
}
