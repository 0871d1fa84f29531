// `npm run bench:proxy`: the same upstream under the same load (autocannon, 100 connections, GET of a
// small JSON), measured in one run: directly, through Fastify with @fastify/http-proxy, and through
// Flowgate's proxy route (edge off, logging on as in production; and once more with the request log
// line off, as @fastify/http-proxy runs here). Rounds side by side; each ratio is
// the median of the per-round ratios (a shared 2-core VM drifts by ±20% from minute to minute).
// Prints req/s, p50/p99, the p99 each proxy adds over direct, and CPU µs per request per process.
// Scenarios (BENCH_SCENARIOS, default ws,http,graphql, in that order): the WebSocket echo
// (./ws-echo.ts), the HTTP proxy above, then a GraphQL query direct and through a GraphQL route
// (./proxy-graphql.ts; BENCH_GRAPHQL_ROUNDS rounds, 0 skips it).
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { freePort } from '../lib/net.js'
import { graphqlScenario } from './proxy-graphql.js'
import { runEchoScenarios } from './ws-echo.js'

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const ROUND_SEC = Number(process.env.BENCH_ROUND_SEC ?? 5)
const GRAPHQL_ROUNDS = Number(process.env.BENCH_GRAPHQL_ROUNDS ?? ROUNDS)
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? 'ws,http,graphql').split(',')
const WS_CLIENTS = Number(process.env.BENCH_WS_CLIENTS ?? 50)
const child = fileURLToPath(new URL('./proxy-child.js', import.meta.url))
const children: ChildProcess[] = []
const roles = new Map<string, ChildProcess>()

function start(name: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = fork(child, args, { stdio: 'inherit' })
    children.push(c)
    roles.set(name, c)
    c.once('message', () => resolve())
    c.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)))
  })
}

function cpuOf(name: string): Promise<number> {
  const c = roles.get(name)!
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'cpu' in m) {
        c.off('message', onMessage)
        const { user, system } = (m as { cpu: NodeJS.CpuUsage }).cpu
        resolve(user + system)
      }
    }
    c.on('message', onMessage)
    c.send('cpu')
  })
}

export interface Result {
  rps: number
  p50: number
  p99: number
  errors: number
  cpuUs: Record<string, number>
}

async function load(url: string, measured: string[], durationSec: number, request: Partial<autocannon.Options> = {}): Promise<Result> {
  const before = await Promise.all(measured.map(cpuOf))
  const r = await autocannon({ ...request, url, connections: CONNECTIONS, duration: durationSec })
  const after = await Promise.all(measured.map(cpuOf))
  const cpuUs = Object.fromEntries(measured.map((m, i) => [m, (after[i]! - before[i]!) / Math.max(1, r.requests.total)]))
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx, cpuUs }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main() {
  const natsPort = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-bench-proxy-'))
  children.push(spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-sd', dir], { stdio: 'ignore' }))
  const natsUrl = `nats://127.0.0.1:${natsPort}`
  await new Promise((r) => setTimeout(r, 300))
  try {
    const graphql = async () => {
      if (SCENARIOS.includes('graphql') && GRAPHQL_ROUNDS > 0) await graphqlScenario({ start, load, freePort, natsUrl, rounds: GRAPHQL_ROUNDS, roundSec: ROUND_SEC })
    }
    if (SCENARIOS.includes('ws')) await webSocketScenario(natsUrl)
    if (!SCENARIOS.includes('http')) return await graphql()
    const upPort = await freePort()
    const hpPort = await freePort()
    const gwPort = await freePort()
    const quietPort = await freePort()
    await start('upstream', ['upstream', String(upPort)])
    const upstream = `http://127.0.0.1:${upPort}`
    await start('http-proxy', ['http-proxy', String(hpPort), upstream])
    await start('gateway', ['gateway', String(gwPort), upstream, natsUrl])
    await start('gateway-quiet', ['gateway', String(quietPort), upstream, natsUrl, JSON.stringify({ logLevel: 'warn' })])
    const urls = {
      direct: `${upstream}/products/42`,
      httpProxy: `http://127.0.0.1:${hpPort}/api/products/42`,
      gateway: `http://127.0.0.1:${gwPort}/api/products/42`,
      quiet: `http://127.0.0.1:${quietPort}/api/products/42`,
    }
    for (const [name, url] of Object.entries(urls)) {
      const res = await fetch(url)
      if (res.status !== 200) throw new Error(`${name} answered ${res.status}: ${await res.text()}`)
      await autocannon({ url, connections: CONNECTIONS, duration: 2 }) // warm-up: JIT, keep-alive pools
    }
    console.log(`${CONNECTIONS} connections, ${ROUNDS} rounds of ${ROUND_SEC} s per scenario, ${process.platform} ${process.arch}, node ${process.version}`)
    const rounds: Array<{ direct: Result; httpProxy: Result; gateway: Result; quiet: Result }> = []
    for (let i = 0; i < ROUNDS; i++) {
      const direct = await load(urls.direct, ['upstream'], ROUND_SEC)
      const httpProxy = await load(urls.httpProxy, ['http-proxy', 'upstream'], ROUND_SEC)
      const gateway = await load(urls.gateway, ['gateway', 'upstream'], ROUND_SEC)
      const quiet = await load(urls.quiet, ['gateway-quiet', 'upstream'], ROUND_SEC)
      rounds.push({ direct, httpProxy, gateway, quiet })
      console.log(`  round ${i + 1}: direct ${direct.rps.toFixed(0)}, @fastify/http-proxy ${httpProxy.rps.toFixed(0)}, flowgate ${gateway.rps.toFixed(0)}, flowgate without the log line ${quiet.rps.toFixed(0)} req/s`)
    }
    type Scenario = 'direct' | 'httpProxy' | 'gateway' | 'quiet'
    const pick = (k: Scenario) => {
      const rs = rounds.map((r) => r[k])
      const roleNames = Object.keys(rs[0]!.cpuUs)
      return {
        rps: median(rs.map((r) => r.rps)),
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        errors: rs.reduce((n, r) => n + r.errors, 0),
        cpu: roleNames.map((n) => `${n} ${median(rs.map((r) => r.cpuUs[n]!)).toFixed(0)}`).join(', '),
      }
    }
    const ratio = (a: Scenario, b: Scenario) => median(rounds.map((r) => r[a].rps / r[b].rps))
    const addedP99 = (a: Scenario) => median(rounds.map((r) => r[a].p99 - r.direct.p99))
    const rows: Array<[string, ReturnType<typeof pick>, string, string, string]> = [
      ['direct to the upstream', pick('direct'), '1.00', '', ''],
      ['@fastify/http-proxy', pick('httpProxy'), ratio('httpProxy', 'direct').toFixed(2), '1.00', String(addedP99('httpProxy'))],
      ['Flowgate proxy route', pick('gateway'), ratio('gateway', 'direct').toFixed(2), ratio('gateway', 'httpProxy').toFixed(2), String(addedP99('gateway'))],
      ['  the same, log line off', pick('quiet'), ratio('quiet', 'direct').toFixed(2), ratio('quiet', 'httpProxy').toFixed(2), String(addedP99('quiet'))],
    ]
    console.log(`\n${'scenario'.padEnd(26)} ${'req/s'.padStart(8)} ${'p50/p99 ms'.padStart(11)} ${'× direct'.padStart(9)} ${'× http-proxy'.padStart(13)} ${'+p99 ms'.padStart(8)}  errors  CPU µs/request`)
    for (const [name, r, xd, xh, p99] of rows) {
      console.log(`${name.padEnd(26)} ${r.rps.toFixed(0).padStart(8)} ${`${r.p50}/${r.p99}`.padStart(11)} ${xd.padStart(9)} ${xh.padStart(13)} ${p99.padStart(8)}  ${String(r.errors).padStart(6)}  ${r.cpu}`)
    }
    const verdict = ratio('gateway', 'httpProxy')
    console.log(`\nFlowgate / @fastify/http-proxy: ${verdict.toFixed(2)}× (per round: ${rounds.map((r) => (r.gateway.rps / r.httpProxy.rps).toFixed(2)).join(' ')}); target ≥ 1.0×: ${verdict >= 1 ? 'ok' : 'MISSED'}`)
    console.log(`without its request log line: ${ratio('quiet', 'httpProxy').toFixed(2)}× (per round: ${rounds.map((r) => (r.quiet.rps / r.httpProxy.rps).toFixed(2)).join(' ')})`)
    await graphql()
  } finally {
    for (const c of children) c.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 300))
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Direct, @fastify/http-proxy with `websocket: true`, and a Flowgate WebSocket route to one `ws` echo server. */
async function webSocketScenario(natsUrl: string) {
  const [wsUp, wsHp, wsGw] = [await freePort(), await freePort(), await freePort()]
  const upstream = `http://127.0.0.1:${wsUp}`
  await start('ws-upstream', ['ws-upstream', String(wsUp)])
  await start('ws-http-proxy', ['ws-http-proxy', String(wsHp), upstream])
  await start('ws-gateway', ['ws-gateway', String(wsGw), upstream, natsUrl])
  console.log(`${WS_CLIENTS} WebSocket clients, sequential echo round trips of 64 bytes, ${ROUNDS} rounds of ${ROUND_SEC} s per scenario`)
  await runEchoScenarios(
    [
      { name: 'direct to the upstream', url: `ws://127.0.0.1:${wsUp}/`, roles: ['ws-upstream'] },
      { name: '@fastify/http-proxy (ws)', url: `ws://127.0.0.1:${wsHp}/ws/echo`, roles: ['ws-http-proxy', 'ws-upstream'] },
      { name: 'Flowgate WebSocket route', url: `ws://127.0.0.1:${wsGw}/ws/echo`, roles: ['ws-gateway', 'ws-upstream'] },
    ],
    cpuOf,
    { clients: WS_CLIENTS, rounds: ROUNDS, roundSec: ROUND_SEC },
  )
  console.log('')
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    for (const c of children) c.kill('SIGKILL')
    process.exit(1)
  },
)
