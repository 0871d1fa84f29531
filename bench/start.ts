// How long `npm start` takes to be ready (GET /ready answers 200) on an existing data directory,
// against, measured in the same run and alternating: the CLI run straight from tsc's output (what
// scripts/bundle.mjs links into dist/app/), the linked CLI run without npm, and the start script
// before both (`npm run build && node dist/cli/main.js start`, which ran tsc every time). Each start
// is the fresh-clone setup: its own nats-server started by `flowgate start` on a free port, the
// embedded PGlite database, no Redis. Prints wall-clock ms to ready and the CPU ms the whole process
// tree spent to get there (the second is what a busy machine does not inflate as much).
//   npm run bench:start      (BENCH_ROUNDS=5 to change the runs)
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../lib/net.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const TICK_MS = 1000 / 100 // USER_HZ on Linux

/** CPU ms of every live process in a process group, with the children they already reaped. */
function groupCpuMs(pgid: number): number {
  let ticks = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    } catch {
      continue // gone between the listing and the read
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (Number(fields[2]) !== pgid) continue
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])
  }
  return ticks * TICK_MS
}

async function startOnce(command: string, env: Record<string, string>, port: number): Promise<{ wallMs: number; cpuMs: number }> {
  const started = performance.now()
  const child = spawn('sh', ['-c', command], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`exited before ready:\n${stderr}`)
      const ok = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 200, () => false)
      if (ok) break
      if (performance.now() - started > 120_000) throw new Error(`not ready in 120 s:\n${stderr}`)
      await new Promise((r) => setTimeout(r, 10))
    }
    return { wallMs: performance.now() - started, cpuMs: groupCpuMs(child.pid!) }
  } finally {
    signalGroup(child.pid!, 'SIGINT') // Ctrl-C to the whole group, as a terminal sends it
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))])
    signalGroup(child.pid!, 'SIGKILL') // whatever did not stop (nothing, normally)
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err // ESRCH: the group is already gone
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'flowgate-bench-start-'))
  const port = await freePort()
  const env = {
    DATA_DIR: dataDir,
    PORT: String(port),
    LOCAL_NATS_PORT: '0',
    CACHE_PROXY_PORT: String(await freePort()),
    REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    LOG_LEVEL: 'warn',
  }
  const variants = {
    'npm start (build only when stale)': 'npm start --silent',
    'node dist/app/main.js start (linked)': 'node dist/app/main.js start',
    'node dist/cli/main.js start (tsc output)': 'node dist/cli/main.js start',
    'previous: npm run build && flowgate start': 'npm run build --silent && node dist/cli/main.js start',
  }
  try {
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
    // The first start creates the database, seeds it and generates the secret: not what is measured.
    await startOnce(variants['npm start (build only when stale)'], env, port)
    const results: Record<string, Array<{ wallMs: number; cpuMs: number }>> = {}
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, command] of Object.entries(variants)) (results[name] ??= []).push(await startOnce(command, env, port))
    }
    for (const [name, runs] of Object.entries(results)) {
      const wall = runs.map((r) => r.wallMs)
      const cpu = runs.map((r) => r.cpuMs)
      console.log(
        `${name.padEnd(44)} ready in ${Math.round(median(wall))} ms (runs ${wall.map(Math.round).join(', ')}), ` +
          `CPU ${Math.round(median(cpu))} ms (runs ${cpu.map(Math.round).join(', ')})`,
      )
    }
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
