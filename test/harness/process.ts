// Starts a real server binary for a test file: a free port, a temp dir, a readiness probe raced
// against early exit, and a clear message when the binary is missing.
export { freePort, portOpen } from '../../lib/net.js'
import { portOpen } from '../../lib/net.js'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// A test that times out, or fails before its own cleanup, must not leave a server or a CLI process
// running (holding ports and CPU for the files after it): what is still up goes with the test file's process.
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `flowgate-${prefix}-`))
}

/** The path of a binary, or a thrown error naming the package to install. */
export function requireBinary(name: string, candidates: string[], hint: string): string {
  for (const c of [name, ...candidates]) {
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim()
  }
  throw new Error(`${name} not found on PATH: ${hint}`)
}

export interface ServerProcess {
  child: ChildProcess
  dir: string
  stop(): Promise<void>
  /** SIGKILL, for fault tests; the dir stays so the server can be started again on it. */
  kill(): Promise<void>
  output(): string
}

export async function startProcess(opts: {
  name: string
  bin: string
  args: string[]
  dir: string
  ready: () => Promise<boolean>
  timeoutMs?: number
  removeDir?: boolean
}): Promise<ServerProcess> {
  const child = spawn(opts.bin, opts.args, { stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  let out = ''
  const collect = (b: Buffer) => {
    out = (out + b.toString()).slice(-8192)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  let exited: number | null | undefined
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exited = code
      resolve()
    }),
  )
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000)
  for (;;) {
    if (exited !== undefined) throw new Error(`${opts.name} exited early (code ${exited}):\n${out}`)
    if (await opts.ready().catch(() => false)) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${opts.name} not ready in time:\n${out}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const waitExit = async (signal: NodeJS.Signals) => {
    if (exited !== undefined) return
    child.kill(signal)
    await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))])
    if (exited === undefined) {
      child.kill('SIGKILL')
      await exit
    }
  }
  return {
    child,
    dir: opts.dir,
    output: () => out,
    kill: () => waitExit('SIGKILL'),
    async stop() {
      await waitExit('SIGTERM')
      if (opts.removeDir !== false) rmSync(opts.dir, { recursive: true, force: true })
    },
  }
}

/** A server that fault tests can kill and bring back on the same port and data dir. */
export interface RestartableServer {
  port: number
  /** SIGKILL; the port and data dir are kept for `restart()`. */
  kill(): Promise<void>
  restart(): Promise<void>
  /** Stops it and removes its dir. */
  stop(): Promise<void>
}

export async function startRestartable(opts: { name: string; bin: string; args: string[]; dir: string; port: number }): Promise<RestartableServer> {
  const launch = () =>
    startProcess({ name: opts.name, bin: opts.bin, args: opts.args, dir: opts.dir, ready: () => portOpen(opts.port), removeDir: false })
  let proc: ServerProcess | undefined = await launch()
  return {
    port: opts.port,
    async kill() {
      await proc?.kill()
      proc = undefined
    },
    async restart() {
      proc ??= await launch()
    },
    async stop() {
      await proc?.stop()
      proc = undefined
      rmSync(opts.dir, { recursive: true, force: true })
    },
  }
}

/** Polls until `check` holds (a rejection counts as not yet), or throws after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await Promise.resolve(check()).catch(() => false)) return
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** The built CLI's entry point: the linked build (scripts/bundle.mjs), what the `flowgate` bin and `npm start` run. */
export const CLI = 'dist/app/main.js'

export interface CliProcess {
  child: ChildProcess
  output(): string
  exit: Promise<number | null>
}

/** The built CLI (`npm test` builds first) as users run it, with only PATH and `env` in its environment. */
export function runCli(args: string[], env: Record<string, string>): CliProcess {
  // Its own data directory unless the test names one: a development start keeps a secret there, never in the repo.
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', DATA_DIR: tempDir('cli-data'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  running.add(child)
  child.once('exit', () => running.delete(child))
  return { child, output: () => out, exit }
}


