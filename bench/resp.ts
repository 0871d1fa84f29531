// RESP proxy benchmark: redis-benchmark GET and SET (-c 50, -P 1 and -P 16) against Redis
// directly, through twemproxy (nutcracker, when installed) and through the Flowgate cache proxy,
// each started here on free ports. Prints ops/s and the ratio to direct Redis.
//   npm run bench:resp     (BENCH_REQUESTS=200000 BENCH_ROUNDS=3 to change the runs)
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../lib/config.js'
import { createLogger } from '../lib/logger.js'
import { start } from '../cache-proxy/main.js'
import { freePort, waitForPort } from '../lib/net.js'

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 100_000)
const CLIENTS = 50
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

function which(name: string, extra: string[] = []): string | undefined {
  for (const c of [name, ...extra]) {
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim()
  }
  return undefined
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`))))
  })
}

async function benchmark(port: number, test: 'get' | 'set', pipeline: number): Promise<number> {
  const n = pipeline === 1 ? REQUESTS : REQUESTS * 5
  const out = await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(n), '-P', String(pipeline), '-t', test, '--csv'])
  const row = out.split('\n').find((l) => l.startsWith(`"${test.toUpperCase()}"`))
  if (!row) throw new Error(`no result in redis-benchmark output:\n${out}`)
  return Number(row.split(',')[1]!.replace(/"/g, ''))
}

async function main(): Promise<void> {
  if (!which('redis-server') || !which('redis-benchmark')) {
    console.log('redis-server and redis-benchmark are needed: apt-get install redis-server')
    process.exitCode = 1
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'flowgate-bench-resp-'))
  const children: ChildProcess[] = []
  try {
    const redisPort = await freePort()
    const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
    children.push(redis)
    await waitForPort(redisPort, { exited: () => redis.exitCode !== null })
    await run('redis-cli', ['-p', String(redisPort), 'SET', 'key:__rand_int__', 'x'.repeat(3)])

    const targets: Array<{ name: string; port: number }> = [{ name: 'redis (direct)', port: redisPort }]
    const nutcracker = which('nutcracker', ['/usr/sbin/nutcracker'])
    if (nutcracker) {
      const port = await freePort()
      const conf = join(dir, 'nutcracker.yml')
      writeFileSync(conf, `bench:\n  listen: 127.0.0.1:${port}\n  redis: true\n  servers:\n    - 127.0.0.1:${redisPort}:1\n`)
      const child = spawn(nutcracker, ['-c', conf, '-s', String(await freePort()), '-o', join(dir, 'nutcracker.log')], { stdio: 'ignore' })
      children.push(child)
      await waitForPort(port, { exited: () => child.exitCode !== null })
      targets.push({ name: 'twemproxy', port })
    } else console.log('twemproxy: skipped (nutcracker not installed; apt-get install -y nutcracker)')

    const config = parseConfig({ redisUrl: `redis://127.0.0.1:${redisPort}`, cacheProxyPort: 0, logLevel: 'warn' })
    const proxy = await start(config, createLogger(config))
    await new Promise((r) => setTimeout(r, 200))
    targets.push({ name: 'flowgate cache proxy', port: proxy.address.port })

    const results: Record<string, Record<string, number>> = {}
    for (const t of targets) results[t.name] = {}
    const cases: Array<['get' | 'set', number]> = [
      ['get', 1],
      ['get', 16],
      ['set', 1],
      ['set', 16],
    ]
    // Targets are interleaved and each case keeps its best of ROUNDS runs, so that load from
    // other processes on the machine skews every target alike rather than one of them.
    for (const [test, p] of cases) {
      for (let round = 0; round < ROUNDS; round++) {
        for (const t of targets) {
          // The key is read once first: GET through the proxy measures cache hits.
          if (test === 'get') await run('redis-cli', ['-p', String(t.port), 'GET', 'key:__rand_int__'])
          const k = `${test} -P ${p}`
          results[t.name]![k] = Math.max(results[t.name]![k] ?? 0, await benchmark(t.port, test, p))
        }
      }
    }
    await proxy.close()

    const direct = results['redis (direct)']!
    console.log(`\nredis-benchmark -c ${CLIENTS}, -n ${REQUESTS} at -P 1 and ${REQUESTS * 5} at -P 16, best of ${ROUNDS} (ops/s, ratio to direct)\n`)
    console.log(['target'.padEnd(22), ...cases.map(([t, p]) => `${t.toUpperCase()} -P ${p}`.padStart(22))].join(''))
    for (const [name, r] of Object.entries(results)) {
      const cells = cases.map(([t, p]) => {
        const k = `${t} -P ${p}`
        return `${Math.round(r[k]!)} (${(r[k]! / direct[k]!).toFixed(2)}x)`.padStart(22)
      })
      console.log([name.padEnd(22), ...cells].join(''))
    }
    console.log('\nflowgate targets: GET (cache hit) >= 0.90x at -P 1, >= 0.60x at -P 16; SET (uncached) >= 0.50x at -P 1, >= 0.35x at -P 16')
  } finally {
    for (const c of children) c.kill('SIGTERM')
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
