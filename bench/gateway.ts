// `npm run bench`: requests/s and latency of a trivial flow through the gateway (edge validation,
// NATS request-reply, flow-side validation, a traced step, logging on) against a bare Fastify
// route returning the same JSON, measured in the same run, on loopback. Prints the ratio. A naive
// gateway (Fastify + nats.js request() per call, its own worker) runs beside them: its ratio to bare
// Fastify shows how much of the distance any gateway over NATS pays on the machine at hand.
// Tracing rounds: a gateway and a worker with OpenTelemetry on (100 % and 1 % sampled, exporting
// over OTLP/HTTP to a local sink in this process) alternate with the same pair with tracing off.
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { createServer as createHttpServer } from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import type { BusRole } from '../lib/bus.js'
import { ensureRoleKeys, renderServerConfig, seedFile } from '../cli/nats-config.js'
import { freePort } from '../lib/net.js'

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100)
const child = fileURLToPath(new URL('./child.js', import.meta.url))
const children: ChildProcess[] = []
const roles = new Map<string, ChildProcess>()

let natsPid: number | undefined
let lockedNatsPid: number | undefined

/** CPU time of a nats-server in µs, from /proc (Linux; 0 elsewhere). utime and stime are in 1/100 s. */
function natsCpu(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {
    return 0
  }
}

interface SpanStats {
  exported: number
  dropped: number
  queued: number
}
/** The last span counts each child reported with its CPU time. */
const spanStats = new Map<string, SpanStats>()

function cpuOf(role: string): Promise<number> {
  if (role === 'nats-server') return Promise.resolve(natsCpu(natsPid))
  if (role === LOCKED_NATS) return Promise.resolve(natsCpu(lockedNatsPid))
  const c = roles.get(role)
  if (!c) return Promise.resolve(0)
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'cpu' in m) {
        c.off('message', onMessage)
        const { cpu, spans } = m as { cpu: NodeJS.CpuUsage; spans?: SpanStats }
        if (spans) spanStats.set(role, spans)
        resolve(cpu.user + cpu.system)
      }
    }
    c.on('message', onMessage)
    c.send('cpu')
  })
}

function startRole(role: string, natsUrl: string, port: number, overrides: Record<string, unknown> = {}, name = role, variant = ''): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = fork(child, [role, natsUrl, String(port), JSON.stringify(overrides), variant], { stdio: 'inherit' })
    children.push(c)
    c.once('message', () => resolve(c))
    roles.set(name, c)
    c.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)))
  })
}

/**
 * A nats-server: open, or `locked` with the configuration `flowgate start` runs (one NKey user per
 * role, each with only its permissions), to measure what authentication and permission checks cost.
 */
async function startNats(locked = false): Promise<{ url: string; proc: ChildProcess; dir: string; seed: (role: BusRole) => string }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-bench-'))
  let args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir]
  if (locked) {
    const conf = join(dir, 'nats.conf')
    writeFileSync(conf, renderServerConfig(ensureRoleKeys(join(dir, 'keys')), { listen: `127.0.0.1:${port}`, storeDir: join(dir, 'js') }))
    args = ['-c', conf]
  }
  const proc = spawn('nats-server', args, { stdio: 'ignore' })
  children.push(proc)
  if (locked) lockedNatsPid = proc.pid
  else natsPid = proc.pid
  const { connect } = await import('node:net')
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1').once('connect', () => (s.destroy(), r(true))).once('error', () => r(false))
    })
    if (ok) return { url: `nats://127.0.0.1:${port}`, proc, dir, seed: (role) => seedFile(join(dir, 'keys'), role) }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('nats-server did not start (is it installed?)')
}

interface Result {
  name: string
  /** Median of per-round ratios, when the scenario ran in rounds beside its baselines. */
  ratioBare?: number
  ratioLogged?: number
  /** CPU microseconds per request, summed over the given processes. */
  cpuUs: Record<string, number>
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx: number
}

async function load(name: string, url: string, measured: string[], opts: { warmupSec?: number; durationSec: number }): Promise<Result> {
  // Warm-up (JIT, connection pools), then the measured run.
  const warmupSec = opts.warmupSec ?? 2
  if (warmupSec > 0) await autocannon({ url, connections: CONNECTIONS, duration: warmupSec })
  const before = await Promise.all(measured.map(cpuOf))
  const r = await autocannon({ url, connections: CONNECTIONS, duration: opts.durationSec })
  const after = await Promise.all(measured.map(cpuOf))
  const cpuUs = Object.fromEntries(measured.map((role, i) => [role, (after[i]! - before[i]!) / Math.max(1, r.requests.total)]))
  return { name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx, cpuUs }
}

/** Ratios against both baselines: bare Fastify with nothing on, and with its request logging on. */
function print(results: Result[], bare: Result, logged: Result) {
  console.log(
    `\n${'scenario'.padEnd(42)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'× bare'.padStart(7)} ${'× logged'.padStart(8)}  errors  CPU µs/request`,
  )
  for (const r of results) {
    const cpu = Object.entries(r.cpuUs).map(([role, us]) => `${role} ${us.toFixed(0)}`).join(', ')
    console.log(
      `${r.name.padEnd(42)} ${r.rps.toFixed(0).padStart(9)} ${String(r.p50).padStart(7)} ${String(r.p99).padStart(7)} ${(r.ratioBare ?? r.rps / bare.rps).toFixed(2).padStart(7)} ${(r.ratioLogged ?? r.rps / logged.rps).toFixed(2).padStart(8)}  ${String(r.errors + r.non2xx).padStart(6)}  ${cpu}`,
    )
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** One scenario over several rounds: the median of each figure (errors summed). */
function medianResult(name: string, rounds: Result[]): Result {
  const cpuUs = Object.fromEntries(Object.keys(rounds[0]!.cpuUs).map((role) => [role, median(rounds.map((r) => r.cpuUs[role]!))]))
  return {
    name,
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    errors: rounds.reduce((n, r) => n + r.errors, 0),
    non2xx: rounds.reduce((n, r) => n + r.non2xx, 0),
    cpuUs,
  }
}

// The gateway against its baselines, in ROUNDS rounds of (bare, bare logged, naive, gateway); each ratio is
// the median of the per-round ratios. A shared 2-core VM drifts by ±20% from minute to minute;
// rounds taken side by side see the same machine, so their ratio is steady where one long run of
// each is not.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const ROUND_SEC = Number(process.env.BENCH_ROUND_SEC ?? 5)
const TARGET = 0.4

// The gateway scenario above runs with the edge off; these turn its features on (same run, same machine).
// The limiter's bucket is large enough never to refuse: the cost measured is the check, not 429s.
const EDGE_OFF = { eventsEnabled: false, rateLimitEnabled: false, blocklistEnabled: false }
const NEVER_LIMITED = { rateLimitCapacity: 1_000_000, rateLimitRefillPerSec: 1_000_000 }
const EDGE_SCENARIOS: Record<string, Record<string, unknown>> = {
  'gateway + rate limiter (memory)': { ...EDGE_OFF, rateLimitEnabled: true, ...NEVER_LIMITED },
  'gateway + events (JetStream)': { ...EDGE_OFF, eventsEnabled: true },
  'gateway + full edge (limit+block+events)': { ...NEVER_LIMITED },
}
const EDGE_ROUNDS = Number(process.env.BENCH_EDGE_ROUNDS ?? 5)
// Rounds of 3 s swung by up to ±30% on a 2-core VM; rounds of 5 s narrow that, though one round can still be 15% off.
const EDGE_ROUND_SEC = Number(process.env.BENCH_EDGE_ROUND_SEC ?? 5)
// The edge-off gateway and its worker again, on a second nats-server run locked down as
// `flowgate start` runs it: each process authenticated with its role's NKey, every publish and
// subscription checked against the role's permissions.
const BUS_SCENARIO = 'gateway, bus authenticated + permissions'
const LOCKED_NATS = 'nats-server (locked)'
const EDGE_TARGETS: Record<string, number> = { 'gateway + rate limiter (memory)': 0.05, 'gateway + events (JetStream)': 0.1, [BUS_SCENARIO]: 0.03 }

interface EdgeCost {
  name: string
  /** Median over rounds of 1 - rps(on) / rps(off). */
  throughput: number
  /** Median over rounds of cpu(on) / cpu(off) - 1, gateway CPU per request. */
  cpu: number
  /** The same for nats-server's CPU per request (JetStream's share of the events' cost). */
  serverCpu: number
  perRound: number[]
}

function edgeCost(name: string, rounds: Array<[Result, Result]>): EdgeCost {
  const perRound = rounds.map(([off, on]) => 1 - on.rps / off.rps)
  const growth = (onRole: string, offRole: string) => median(rounds.map(([off, on]) => (on.cpuUs[onRole] ?? 0) / Math.max(1e-9, off.cpuUs[offRole] ?? 0) - 1))
  const server = name === BUS_SCENARIO ? LOCKED_NATS : 'nats-server'
  return { name, throughput: median(perRound), cpu: growth(name, 'gateway'), serverCpu: growth(server, 'nats-server'), perRound }
}

function printEdgeCosts(costs: EdgeCost[]) {
  console.log(`\nedge feature cost vs the same gateway with the edge off (median of ${EDGE_ROUNDS} alternating rounds):`)
  console.log(`  ${'scenario'.padEnd(42)} ${'throughput'.padStart(10)} ${'gateway CPU/req'.padStart(16)} ${'nats-server CPU/req'.padStart(20)}  rounds`)
  for (const c of costs) {
    const target = EDGE_TARGETS[c.name]
    const verdict = target === undefined ? '' : `  target < ${target * 100}%: ${c.throughput <= target ? 'ok' : 'OVER'}`
    const rounds = c.perRound.map((r) => `${(r * 100).toFixed(0)}%`).join(' ')
    console.log(`  ${c.name.padEnd(42)} ${`${(c.throughput * 100).toFixed(1)}%`.padStart(10)} ${`${(c.cpu * 100).toFixed(1)}%`.padStart(16)} ${`${(c.serverCpu * 100).toFixed(1)}%`.padStart(20)}  ${rounds}${verdict}`)
  }
}

// Tracing on, in a gateway and a worker of their own (each scenario has its own flow), against the
// same pair with tracing off: rounds alternate, the median of the per-round ratios is reported.
// "no library spans": OTEL_NODE_DISABLED_INSTRUMENTATIONS=pg,ioredis,undici, so the worker runs no context manager.
const TRACING_SCENARIOS: Record<string, { variant: string; ratio: number; target: number; overrides?: Record<string, unknown> }> = {
  'tracing on, 100% sampled': { variant: 'traced100', ratio: 1, target: 0.15 },
  'tracing on, 1% sampled': { variant: 'traced1', ratio: 0.01, target: 0.03 },
  '1% sampled, no library spans': { variant: 'traced1lite', ratio: 0.01, target: 0.03, overrides: { noActiveContext: true } },
}
const TRACING_ROUNDS = Number(process.env.BENCH_TRACING_ROUNDS ?? 5)

/** An OTLP/HTTP sink standing in for a collector: reads each export and answers 200 (spans are counted by the exporters). */
async function startSink(): Promise<{ url: string; posts: () => number; close: () => void }> {
  let posts = 0
  const server = createHttpServer((req, res) => {
    req.resume()
    req.on('end', () => {
      posts++
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${port}`, posts: () => posts, close: () => server.close() }
}

interface TracingCost {
  name: string
  target: number
  /** Median over rounds of 1 - rps(on) / rps(off). */
  throughput: number
  /** Median over rounds of the growth of gateway + worker CPU per request. */
  cpu: number
  perRound: number[]
  offRps: number
  onRps: number
  spans: { exported: number; dropped: number }
}

function printTracingCosts(costs: TracingCost[], sinkPosts: number) {
  console.log(`
tracing cost vs the same gateway and worker with tracing off (median of ${TRACING_ROUNDS} alternating rounds; OTLP/HTTP to a local sink, ${sinkPosts} exports received):`)
  console.log(`  ${'scenario'.padEnd(28)} ${'off req/s'.padStart(9)} ${'on req/s'.padStart(9)} ${'throughput'.padStart(10)} ${'CPU/req'.padStart(8)}  ${'spans exported/dropped'.padStart(22)}  rounds`)
  for (const c of costs) {
    const rounds = c.perRound.map((r) => `${(r * 100).toFixed(0)}%`).join(' ')
    const verdict = `target ≤ ${c.target * 100}%: ${c.throughput <= c.target ? 'ok' : 'OVER'}`
    console.log(
      `  ${c.name.padEnd(28)} ${c.offRps.toFixed(0).padStart(9)} ${c.onRps.toFixed(0).padStart(9)} ${`${(c.throughput * 100).toFixed(1)}%`.padStart(10)} ${`${(c.cpu * 100).toFixed(1)}%`.padStart(8)}  ${`${c.spans.exported}/${c.spans.dropped}`.padStart(22)}  ${rounds}  ${verdict}`,
    )
  }
}

async function main() {
  const nats = await startNats()
  let locked: Awaited<ReturnType<typeof startNats>> | undefined
  const sink = await startSink()
  try {
    const barePort = await freePort()
    await startRole('bare', nats.url, barePort)
    const loggedPort = await freePort()
    await startRole('bare-logged', nats.url, loggedPort)
    const gwPort = await freePort()
    await startRole('worker', nats.url, 0)
    await startRole('naive-worker', nats.url, 0)
    const naivePort = await freePort()
    await startRole('naive', nats.url, naivePort)
    await startRole('gateway', nats.url, gwPort, EDGE_OFF)
    // Edge features one at a time, each in its own gateway process (idle while the others run).
    const edgePorts: Record<string, number> = {}
    // BENCH_EDGE_ROUNDS=0 measures the gateway against its baselines only.
    for (const [name, overrides] of Object.entries(EDGE_ROUNDS > 0 ? EDGE_SCENARIOS : {})) {
      edgePorts[name] = await freePort()
      await startRole('gateway', nats.url, edgePorts[name], overrides, name)
    }
    if (EDGE_ROUNDS > 0) {
      locked = await startNats(true)
      await startRole('worker', locked.url, 0, { natsNkeySeed: locked.seed('flows') }, 'locked worker')
      edgePorts[BUS_SCENARIO] = await freePort()
      await startRole('gateway', locked.url, edgePorts[BUS_SCENARIO], { ...EDGE_OFF, natsNkeySeed: locked.seed('gateway') }, BUS_SCENARIO)
    }
    // Tracing scenarios: a gateway and a worker each, both with tracing on.
    const tracingPorts: Record<string, number> = {}
    for (const [name, t] of Object.entries(TRACING_ROUNDS > 0 ? TRACING_SCENARIOS : {})) {
      const otel = { ...EDGE_OFF, otelEndpoint: sink.url, otelTracesSampler: 'parentbased_traceidratio', otelTracesSamplerArg: t.ratio, ...t.overrides }
      tracingPorts[name] = await freePort()
      await startRole('worker', nats.url, 0, otel, `${name} worker`, t.variant)
      await startRole('gateway', nats.url, tracingPorts[name], otel, `${name} gateway`, t.variant)
    }
    console.log(`${CONNECTIONS} connections, ${ROUNDS} rounds of ${ROUND_SEC} s per scenario, ${process.platform} ${process.arch}, node ${process.version}`)
    const results: Result[] = []
    const bareUrl = `http://127.0.0.1:${barePort}/api/v1/bench/items/42`
    const loggedUrl = `http://127.0.0.1:${loggedPort}/api/v1/bench/items/42`
    const gwUrl = `http://127.0.0.1:${gwPort}/api/v1/bench/items/42`
    const naiveUrl = `http://127.0.0.1:${naivePort}/api/v1/bench/items/42`
    // BENCH_PROFILE=1 skips the baselines so a --cpu-prof run shows only the gateway under load.
    const profile = Boolean(process.env.BENCH_PROFILE)
    if (!profile) {
      await load('warm', bareUrl, [], { durationSec: 1 })
      await load('warm', loggedUrl, [], { durationSec: 1 })
      await load('warm', naiveUrl, [], { durationSec: 1 })
    }
    await load('warm', gwUrl, [], { durationSec: 1 })
    const rounds: Array<{ bare: Result; logged: Result; naive: Result; gateway: Result }> = []
    for (let i = 0; i < ROUNDS; i++) {
      const once = { warmupSec: 0, durationSec: ROUND_SEC }
      const bare = profile ? undefined : await load('bare', bareUrl, ['bare'], once)
      const logged = profile ? undefined : await load('logged', loggedUrl, ['bare-logged'], once)
      const naive = profile ? undefined : await load('naive', naiveUrl, ['naive', 'naive-worker', 'nats-server'], once)
      const gateway = await load('gateway', gwUrl, ['gateway', 'worker', 'nats-server'], once)
      rounds.push({ bare: bare ?? gateway, logged: logged ?? gateway, naive: naive ?? gateway, gateway })
      if (bare && logged && naive) {
        console.log(`  round ${i + 1}: bare ${bare.rps.toFixed(0)}, logged ${logged.rps.toFixed(0)}, naive ${naive.rps.toFixed(0)}, gateway ${gateway.rps.toFixed(0)} req/s`)
      }
    }
    const bare = medianResult('bare Fastify (same JSON)', rounds.map((r) => r.bare))
    const logged = medianResult('bare Fastify, request logging on', rounds.map((r) => r.logged))
    const naive = medianResult('naive: Fastify + nats.js request() -> flow', rounds.map((r) => r.naive))
    /** The median over rounds of one scenario's req/s against another's in the same round. */
    const ratio = (of: keyof (typeof rounds)[number], to: keyof (typeof rounds)[number]) => median(rounds.map((r) => r[of].rps / r[to].rps))
    naive.ratioBare = ratio('naive', 'bare')
    naive.ratioLogged = ratio('naive', 'logged')
    const gateway = medianResult('gateway -> NATS -> flow', rounds.map((r) => r.gateway))
    gateway.ratioBare = ratio('gateway', 'bare')
    gateway.ratioLogged = ratio('gateway', 'logged')
    logged.ratioBare = ratio('logged', 'bare')
    if (!profile) results.push(bare, logged, naive)
    results.push(gateway)
    // Each edge scenario alternates with the edge-off gateway in EDGE_ROUNDS short rounds (off, on,
    // off, on, ...), and the median of the per-round ratios is reported, so a neighbour's burst of
    // load on a shared machine skews one round, not the verdict.
    const costs: EdgeCost[] = []
    for (const [name, port] of Object.entries(edgePorts)) {
      const onUrl = `http://127.0.0.1:${port}/api/v1/bench/items/42`
      await load(name, onUrl, [name], { durationSec: 1 }) // warm the scenario's process once
      const pairs: Array<[Result, Result]> = []
      for (let i = 0; i < EDGE_ROUNDS; i++) {
        const offRun = await load('edge off', gwUrl, ['gateway', 'nats-server'], { warmupSec: 0, durationSec: EDGE_ROUND_SEC })
        const onRun = await load(name, onUrl, [name, name === BUS_SCENARIO ? LOCKED_NATS : 'nats-server'], { warmupSec: 0, durationSec: EDGE_ROUND_SEC })
        pairs.push([offRun, onRun])
      }
      costs.push(edgeCost(name, pairs))
      results.push(pairs[pairs.length - 1]![1])
    }
    // Tracing: each scenario alternates with the tracing-off pair (gateway + worker) in short rounds.
    const tracingCosts: TracingCost[] = []
    for (const [name, port] of Object.entries(tracingPorts)) {
      const t = TRACING_SCENARIOS[name]!
      const onUrl = `http://127.0.0.1:${port}/api/v1/bench/${t.variant}/42`
      const measuredOn = [`${name} gateway`, `${name} worker`]
      // Warmed as long as the tracing-off pair was by the rounds above, near enough: JIT and pools.
      await load(name, onUrl, measuredOn, { durationSec: 4 })
      const pairs: Array<[Result, Result]> = []
      for (let i = 0; i < TRACING_ROUNDS; i++) {
        const offRun = await load('tracing off', gwUrl, ['gateway', 'worker'], { warmupSec: 0, durationSec: EDGE_ROUND_SEC })
        const onRun = await load(name, onUrl, measuredOn, { warmupSec: 0, durationSec: EDGE_ROUND_SEC })
        pairs.push([offRun, onRun])
      }
      const cpuOfRun = (r: Result) => Object.values(r.cpuUs).reduce((a, b) => a + b, 0)
      const spans = measuredOn.map((role) => spanStats.get(role) ?? { exported: 0, dropped: 0, queued: 0 })
      tracingCosts.push({
        name,
        target: t.target,
        throughput: median(pairs.map(([off, on]) => 1 - on.rps / off.rps)),
        cpu: median(pairs.map(([off, on]) => cpuOfRun(on) / Math.max(1e-9, cpuOfRun(off)) - 1)),
        perRound: pairs.map(([off, on]) => 1 - on.rps / off.rps),
        offRps: median(pairs.map(([off]) => off.rps)),
        onRps: median(pairs.map(([, on]) => on.rps)),
        spans: { exported: spans.reduce((n, x) => n + x.exported, 0), dropped: spans.reduce((n, x) => n + x.dropped, 0) },
      })
      results.push(medianResult(name, pairs.map(([, on]) => on)))
    }
    print(results, bare, logged)
    const spread = rounds.map((r) => (r.gateway.rps / r.bare.rps).toFixed(2)).join(' ')
    if (!profile) {
      console.log(`\ngateway / bare Fastify: ${gateway.ratioBare.toFixed(2)}× (median of ${ROUNDS} rounds: ${spread}); target ≥ ${TARGET}×: ${gateway.ratioBare >= TARGET ? 'ok' : 'MISSED'}`)
      const overNaive = ratio('gateway', 'naive')
      console.log(`gateway / naive nats.js request() gateway: ${overNaive.toFixed(2)}× (the naive one skips validation, headers and logging)`)
    }
    if (costs.length > 0) printEdgeCosts(costs)
    if (tracingCosts.length > 0) printTracingCosts(tracingCosts, sink.posts())
  } finally {
    sink.close()
    for (const c of children) c.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    rmSync(nats.dir, { recursive: true, force: true })
    if (locked) rmSync(locked.dir, { recursive: true, force: true })
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    for (const c of children) c.kill('SIGKILL')
    process.exit(1)
  },
)
