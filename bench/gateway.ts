// `npm run bench`: requests/s and latency of a trivial flow through the gateway (edge validation,
// NATS request-reply, flow-side validation, a traced step, logging on) against a bare Fastify
// route returning the same JSON, measured in the same run, on loopback. Prints the ratio.
import { fork, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const DURATION_SEC = Number(process.env.BENCH_DURATION_SEC ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100)
const child = fileURLToPath(new URL('./child.js', import.meta.url))
const children: ChildProcess[] = []
const roles = new Map<string, ChildProcess>()

function cpuOf(role: string): Promise<number> {
  const c = roles.get(role)
  if (!c) return Promise.resolve(0)
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

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

function startRole(role: string, natsUrl: string, port: number, overrides: Record<string, unknown> = {}): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const c = fork(child, [role, natsUrl, String(port), JSON.stringify(overrides)], { stdio: 'inherit' })
    children.push(c)
    c.once('message', () => resolve(c))
    roles.set(role, c)
    c.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)))
  })
}

async function startNats(): Promise<{ url: string; proc: ChildProcess; dir: string }> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-bench-'))
  const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' })
  children.push(proc)
  const { connect } = await import('node:net')
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1').once('connect', () => (s.destroy(), r(true))).once('error', () => r(false))
    })
    if (ok) return { url: `nats://127.0.0.1:${port}`, proc, dir }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('nats-server did not start (is it installed?)')
}

interface Result {
  name: string
  /** CPU microseconds per request, summed over the given processes. */
  cpuUs: Record<string, number>
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx: number
}

async function load(name: string, url: string, measured: string[]): Promise<Result> {
  // Warm-up (JIT, connection pools), then the measured run.
  await autocannon({ url, connections: CONNECTIONS, duration: 2 })
  const before = await Promise.all(measured.map(cpuOf))
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_SEC })
  const after = await Promise.all(measured.map(cpuOf))
  const cpuUs = Object.fromEntries(measured.map((role, i) => [role, (after[i]! - before[i]!) / Math.max(1, r.requests.total)]))
  return { name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx, cpuUs }
}

function print(results: Result[], baseline: Result) {
  console.log(`\n${'scenario'.padEnd(34)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'ratio'.padStart(6)}  errors  CPU µs/request`)
  for (const r of results) {
    const cpu = Object.entries(r.cpuUs).map(([role, us]) => `${role} ${us.toFixed(0)}`).join(', ')
    console.log(
      `${r.name.padEnd(34)} ${r.rps.toFixed(0).padStart(9)} ${String(r.p50).padStart(7)} ${String(r.p99).padStart(7)} ${(r.rps / baseline.rps).toFixed(2).padStart(6)}  ${String(r.errors + r.non2xx).padStart(6)}  ${cpu}`,
    )
  }
}

async function main() {
  const nats = await startNats()
  try {
    const barePort = await freePort()
    await startRole('bare', nats.url, barePort)
    const gwPort = await freePort()
    await startRole('worker', nats.url, 0)
    await startRole('gateway', nats.url, gwPort)
    console.log(`${CONNECTIONS} connections, ${DURATION_SEC} s per scenario, ${process.platform} ${process.arch}, node ${process.version}`)
    const results: Result[] = []
    // BENCH_PROFILE=1 skips the baseline so a --cpu-prof run shows only the gateway under load.
    const bare = process.env.BENCH_PROFILE
      ? { name: 'bare (skipped)', rps: 1, p50: 0, p99: 0, errors: 0, non2xx: 0, cpuUs: {} }
      : await load('bare Fastify (same JSON)', `http://127.0.0.1:${barePort}/api/v1/bench/items/42`, ['bare'])
    results.push(bare)
    results.push(await load('gateway -> NATS -> flow', `http://127.0.0.1:${gwPort}/api/v1/bench/items/42`, ['gateway', 'worker']))
    print(results, bare)
  } finally {
    for (const c of children) c.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    rmSync(nats.dir, { recursive: true, force: true })
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
