// PostgreSQL for integration tests. `createTestDatabase()` gives one test file its own database on
// the machine's server (TEST_DATABASE_URL), migrated by the harness and dropped after.
// `startPostgresServer()` runs a private server (initdb + postgres on a free port) that a test may
// stop and start again, for the "database went away" faults.
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { openDatabase, type DatabaseHandle } from '../../db/client.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { freePort, portOpen, startProcess, tempDir, type ServerProcess } from './process.js'

export const ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

export interface TestDatabase {
  url: string
  name: string
  /** Opened and migrated, through the same code the worker uses. */
  handle: DatabaseHandle
  drop(): Promise<void>
}

const quietLog = createLogger({ logLevel: 'silent' })

function urlWithDatabase(base: string, database: string): string {
  const u = new URL(base)
  u.pathname = `/${database}`
  return u.toString()
}

/** A fresh database for one test file, migrated unless `migrate: false`. */
export async function createTestDatabase(prefix = 'accounts', opts: { baseUrl?: string; migrate?: boolean } = {}): Promise<TestDatabase> {
  const baseUrl = opts.baseUrl ?? ADMIN_URL
  const name = `flowgate_test_${prefix}_${process.pid}_${Date.now().toString(36)}`.toLowerCase()
  const admin = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 3000 })
  try {
    await admin.connect()
  } catch (err) {
    throw new Error(`PostgreSQL not reachable at ${baseUrl} (set TEST_DATABASE_URL): ${(err as Error).message}`)
  }
  try {
    await admin.query(`CREATE DATABASE "${name}"`)
  } finally {
    await admin.end()
  }
  const url = urlWithDatabase(baseUrl, name)
  const handle = await openDatabase(parseConfig({ databaseUrl: url, dbConnectTimeoutMs: 1000 }), quietLog)
  if (opts.migrate !== false) await handle.migrate()
  return {
    url,
    name,
    handle,
    async drop() {
      await handle.close().catch(() => undefined)
      const c = new pg.Client({ connectionString: baseUrl })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}

export interface PostgresServer {
  url: string
  port: number
  /** SIGKILL-free fast shutdown; the data dir stays for `restart()`. */
  pause(): Promise<void>
  restart(): Promise<void>
  stop(): Promise<void>
}

function findPgBin(name: string): string | undefined {
  const candidates = ['/usr/local/bin', ...listVersions().map((v) => `/usr/lib/postgresql/${v}/bin`)]
  for (const dir of candidates) if (existsSync(join(dir, name))) return join(dir, name)
  return undefined
}

function listVersions(): string[] {
  try {
    return readdirSync('/usr/lib/postgresql').sort().reverse()
  } catch {
    return []
  }
}

/** Why a private server cannot run here, or undefined when it can. */
export function postgresServerUnavailable(): string | undefined {
  if (!findPgBin('initdb') || !findPgBin('postgres')) return 'initdb/postgres not found in /usr/local/bin or /usr/lib/postgresql/*/bin'
  if (process.getuid?.() === 0 && spawnSync('runuser', ['-u', 'postgres', '--', 'true']).status !== 0) {
    return 'running as root and cannot run commands as the postgres user (runuser -u postgres)'
  }
  return undefined
}

/** initdb + postgres on a free port in a temp dir (as the postgres user when we are root). */
export async function startPostgresServer(): Promise<PostgresServer> {
  const initdb = findPgBin('initdb')!
  const postgres = findPgBin('postgres')!
  const asRoot = process.getuid?.() === 0
  const dir = tempDir('pg')
  const data = join(dir, 'data')
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    chownSync(dir, uid, gid)
    chmodSync(dir, 0o700)
  }
  const as = (bin: string, args: string[]) => (asRoot ? { bin: 'runuser', args: ['-u', 'postgres', '--', bin, ...args] } : { bin, args })
  const init = as(initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'])
  const r = spawnSync(init.bin, init.args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr || r.stdout}`)
  const port = await freePort()
  const run = as(postgres, ['-D', data, '-p', String(port), '-k', dir, '-h', '127.0.0.1', '-F', '-c', 'fsync=off'])
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  const ready = async () => {
    if (!(await portOpen(port))) return false
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 500 })
    try {
      await c.connect()
      await c.query('select 1')
      return true
    } catch {
      return false
    } finally {
      await c.end().catch(() => undefined)
    }
  }
  const launch = () => startProcess({ name: 'postgres', bin: run.bin, args: run.args, dir, ready, removeDir: false, timeoutMs: 20_000 })
  let proc: ServerProcess | undefined = await launch()
  // SIGINT is PostgreSQL's fast shutdown (SIGTERM, smart, would wait for clients to leave).
  const fastStop = async () => {
    if (!proc) return
    const p = proc
    proc = undefined
    const exited = new Promise((resolve) => p.child.once('exit', resolve))
    // Signal the postmaster itself (its pid is in postmaster.pid): runuser in between may not pass SIGINT on.
    let pid = p.child.pid!
    try {
      pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) || pid
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err // no pid file: the server is already gone
    }
    try {
      if (p.child.exitCode === null) process.kill(pid, 'SIGINT')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
    if (p.child.exitCode === null) await p.kill()
  }
  return {
    url,
    port,
    pause: fastStop,
    async restart() {
      if (!proc) proc = await launch()
    },
    async stop() {
      await fastStop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
