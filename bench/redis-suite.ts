// Runs Redis's own Tcl test suite in external mode against a redis-server and then against the
// cache proxy in front of it, file by file, and prints the pass/fail counts side by side. The
// suite judges whether the proxy is transparent. It is not part of `npm test`.
//
//   npm run test:redis-suite -- <dir>      (dir: a redis source tree's `tests/` or the folder holding it,
//                                           e.g. `git archive 7.0.15 tests runtest | tar -x -C <dir>`)
//   REDIS_SUITE_FILES=unit/expire,unit/multi   only these files
//   REDIS_SUITE_POLICY=<file>                  cache policy for the proxy (default: the suite policy
//                                              in test/cache-proxy/redis-suite-policy.yaml)
//   REDIS_SUITE_TARGETS=proxy                  skip the direct run
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { freePort, waitForPort } from '../lib/net.js'

const FILES = [
  'unit/type/string',
  'unit/type/list',
  'unit/type/hash',
  'unit/type/set',
  'unit/type/incr',
  'unit/keyspace',
  'unit/expire',
  'unit/protocol',
  'unit/pubsub',
  'unit/multi',
  'unit/scripting',
  'unit/info-command',
]
/** A file still running after this long is stalled: it is killed and reported as such. */
const FILE_TIMEOUT_MS = Number(process.env.REDIS_SUITE_FILE_TIMEOUT_MS ?? 300_000)

interface FileResult {
  file: string
  ok: number
  err: number
  exception: boolean
  stalled: boolean
  failed: string[]
  seconds: number
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((res) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.once('exit', () => {
      clearTimeout(t)
      res()
    })
    child.kill('SIGTERM')
  })
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g

/** Runs one test file against host:port and counts its [ok] and [err] lines. */
function runFile(root: string, port: number, file: string, logDir: string, label: string): Promise<FileResult> {
  const started = Date.now()
  const log = createWriteStream(join(logDir, `${label}-${file.replace(/\//g, '_')}.log`))
  const args = ['tests/test_helper.tcl', '--host', '127.0.0.1', '--port', String(port), '--singledb', '--tags', '-needs:debug', '--single', file, '--clients', '1', '--timeout', '120']
  // Its own process group, so that a stalled file is killed with the test client it spawned.
  const child = spawn('tclsh', args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const result: FileResult = { file, ok: 0, err: 0, exception: false, stalled: false, failed: [], seconds: 0 }
  let rest = ''
  const onText = (b: Buffer) => {
    log.write(b)
    const lines = (rest + b.toString()).split('\n')
    rest = lines.pop()!
    for (const raw of lines) {
      const line = raw.replace(ANSI, '')
      if (line.startsWith('[ok]:')) result.ok++
      else if (line.startsWith('[err]:')) {
        result.err++
        result.failed.push(line.slice(7))
      } else if (line.startsWith('[TIMEOUT]:')) {
        // The test client stopped answering for --timeout seconds: the file stalled.
        result.stalled = true
        result.failed.push(line)
      } else if (line.startsWith('[exception]:')) {
        result.exception = true
        result.failed.push(line)
      }
    }
  }
  child.stdout!.on('data', onText)
  child.stderr!.on('data', onText)
  return new Promise((res) => {
    const timer = setTimeout(() => {
      result.stalled = true
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch (err) {
        log.write(`\nkill failed: ${(err as Error).message}\n`)
      }
    }, FILE_TIMEOUT_MS)
    child.once('exit', () => {
      clearTimeout(timer)
      result.seconds = Math.round((Date.now() - started) / 1000)
      log.end()
      res(result)
    })
  })
}

async function main(): Promise<void> {
  const arg = process.argv[2]
  if (!arg) {
    console.error('usage: npm run test:redis-suite -- <redis tests dir>')
    process.exitCode = 2
    return
  }
  let root = resolve(arg)
  if (!existsSync(join(root, 'tests', 'test_helper.tcl')) && existsSync(join(root, 'test_helper.tcl'))) root = dirname(root)
  if (!existsSync(join(root, 'tests', 'test_helper.tcl'))) throw new Error(`no tests/test_helper.tcl under ${root}`)
  for (const bin of ['tclsh', 'redis-server', 'redis-cli']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) throw new Error(`${bin} not found on PATH`)
  }
  const here = dirname(new URL(import.meta.url).pathname)
  const repo = resolve(here, '..', '..')
  const policy = process.env.REDIS_SUITE_POLICY ?? join(repo, 'test', 'cache-proxy', 'redis-suite-policy.yaml')
  const files = process.env.REDIS_SUITE_FILES ? process.env.REDIS_SUITE_FILES.split(',') : FILES
  const targets = (process.env.REDIS_SUITE_TARGETS ?? 'direct,proxy').split(',')
  const work = mkdtempSync(join(tmpdir(), 'flowgate-redis-suite-'))
  console.log(`redis tests: ${root}; cache proxy policy: ${policy || 'built-in'}; logs in ${work}`)
  const results: Record<string, FileResult[]> = {}
  for (const target of targets) {
    results[target] = []
    for (const file of files) {
      // A fresh redis-server (and proxy) per file: a file's CONFIG SETs and leftovers do not
      // reach the next one, and a stall or crash costs one file only.
      const r = await withServers(repo, work, target === 'proxy' ? policy : null, `${target}-${file.replace(/\//g, '_')}`, (port) =>
        runFile(root, port, file, work, target),
      )
      results[target]!.push(r)
      const state = r.stalled ? ' STALLED' : r.exception ? ' ABORTED' : ''
      console.log(`${target.padEnd(7)} ${file.padEnd(20)} ok ${String(r.ok).padStart(4)}  err ${String(r.err).padStart(3)}${state}  (${r.seconds} s)`)
      for (const f of r.failed) console.log(`          ${f}`)
    }
  }
  console.log(`\n${'file'.padEnd(20)}${targets.map((t) => `${t} ok/err`.padStart(20)).join('')}`)
  const total: Record<string, { ok: number; err: number }> = {}
  for (let i = 0; i < files.length; i++) {
    const cells = targets.map((t) => {
      const r = results[t]![i]!
      const sum = (total[t] ??= { ok: 0, err: 0 })
      sum.ok += r.ok
      sum.err += r.err
      const state = r.stalled ? ' stalled' : r.exception ? ' aborted' : ''
      return `${r.ok}/${r.err}${state}`.padStart(20)
    })
    console.log(files[i]!.padEnd(20) + cells.join(''))
  }
  console.log('total'.padEnd(20) + targets.map((t) => `${total[t]!.ok}/${total[t]!.err}`.padStart(20)).join(''))
  console.log(`\nlogs: ${work}`)
  // Through the proxy, every file must pass as it does directly, and none may stall or abort.
  const bad = (results.proxy ?? []).filter((r, i) => r.err > 0 || r.stalled || r.exception || (results.direct !== undefined && r.ok !== results.direct[i]!.ok))
  if (bad.length > 0) {
    console.log(`differs from direct Redis: ${bad.map((r) => r.file).join(', ')}`)
    process.exitCode = 1
  }
}

/** Starts a redis-server (and, with a policy, the proxy in front of it), runs `fn` on the port to test, stops them. */
async function withServers<T>(repo: string, work: string, policy: string | null, label: string, fn: (port: number) => Promise<T>): Promise<T> {
  const children: ChildProcess[] = []
  const dir = mkdtempSync(join(work, 'redis-'))
  try {
    const redisPort = await freePort()
    const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
    children.push(redis)
    await waitForPort(redisPort, { exited: () => redis.exitCode !== null })
    if (policy === null) return await fn(redisPort)
    const proxyPort = await freePort()
    const proxyLog = createWriteStream(join(work, `${label}.proxy.log`))
    const proxy = spawn(process.execPath, [join(repo, 'dist', 'cli', 'main.js'), 'cache-proxy'], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL: `redis://127.0.0.1:${redisPort}`, CACHE_PROXY_PORT: String(proxyPort), LOG_LEVEL: 'warn', ...(policy ? { CACHE_POLICY_FILE: policy } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    children.push(proxy)
    proxy.stdout!.pipe(proxyLog)
    proxy.stderr!.pipe(proxyLog)
    await waitForPort(proxyPort, { exited: () => proxy.exitCode !== null })
    return await fn(proxyPort)
  } finally {
    for (const c of children.reverse()) await stop(c)
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
