// The embedded database (PGlite) held by a thread of its own (db/pglite-thread.mjs), and the client
// Drizzle's PGlite driver is given in its place: it has the part of PGlite's interface the driver
// and its migrator use (query, transaction, close). Queries are sent one at a time, as PGlite runs
// them anyway; a transaction holds that turn from BEGIN to COMMIT so nothing else runs inside it.
// The data directory's pid lock (PGlite serves one process) is taken before the thread starts.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

/** What PGlite's `query` answers, as far as Drizzle reads it. */
export interface QueryResult {
  rows: unknown[]
  fields: { name: string; dataTypeID: number }[]
  affectedRows?: number
}

interface QueryOptions {
  rowMode?: 'array' | 'object'
  /** PGlite's per-type parsers; only which types they cover crosses the thread (see `keepText`). */
  parsers?: Record<number, unknown>
}

interface Queryable {
  query(sql: string, params?: unknown[], options?: QueryOptions): Promise<QueryResult>
}

export interface EmbeddedDatabase extends Queryable {
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/** How long the thread may take to open the database before the start fails (a cold first open runs initdb). */
const OPEN_TIMEOUT_MS = 60_000

export class DatabaseLockedError extends Error {
  constructor(pid: number, file: string) {
    super(
      `The embedded database is in use by process ${pid} (${file}). PGlite allows one process: stop it first ` +
        '(in development `flowgate start` already migrates and seeds it), or set DATABASE_URL to a PostgreSQL server.',
    )
    this.name = 'DatabaseLockedError'
  }
}

/** The thread's answer to a failed query: PostgreSQL's fields (SQLSTATE `code` first) on an Error. */
function errorFrom(fields: { name: string; message: string } & Record<string, string>): Error {
  return Object.assign(new Error(fields.message), fields)
}

class ThreadClient implements EmbeddedDatabase {
  private seq = 0
  private readonly pending = new Map<number, { resolve: (r: QueryResult) => void; reject: (e: Error) => void }>()
  /** The end of the line of queries and transactions waiting for their turn. */
  private turn: Promise<unknown> = Promise.resolve()
  private gone: Error | undefined

  constructor(
    private readonly worker: Worker,
    private readonly release: () => void,
  ) {
    worker.on('message', (m: { id: number; ok: boolean; result?: QueryResult; error?: Parameters<typeof errorFrom>[0] }) => {
      const p = this.pending.get(m.id)
      if (!p) return
      this.pending.delete(m.id)
      if (this.pending.size === 0) worker.unref()
      if (m.ok) p.resolve(m.result!)
      else p.reject(errorFrom(m.error!))
    })
    const fail = (err: Error) => {
      this.gone ??= err
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
      this.release()
    }
    worker.on('error', (err) => fail(new Error(`the embedded database thread failed: ${err.message}`)))
    worker.on('exit', (code) => fail(new Error(`the embedded database thread exited (${code})`)))
  }

  private send(message: Record<string, unknown>): Promise<QueryResult> {
    if (this.gone) return Promise.reject(this.gone)
    const id = ++this.seq
    // The thread holds the process up only while it has a query to answer, as a socket would.
    if (this.pending.size === 0) this.worker.ref()
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ ...message, id })
    })
  }

  private run(sql: string, params: unknown[] | undefined, options: QueryOptions | undefined): Promise<QueryResult> {
    const keepText = options?.parsers ? Object.keys(options.parsers).map(Number) : undefined
    return this.send({ op: 'query', sql, params: params ?? [], rowMode: options?.rowMode, keepText })
  }

  /** Runs `work` when every earlier query and transaction is done. */
  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turn.then(work)
    this.turn = result.catch(() => undefined)
    return result
  }

  query(sql: string, params?: unknown[], options?: QueryOptions): Promise<QueryResult> {
    return this.inTurn(() => this.run(sql, params, options))
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.inTurn(async () => {
      await this.run('BEGIN', [], undefined)
      try {
        const result = await fn({ query: (sql, params, options) => this.run(sql, params, options) })
        await this.run('COMMIT', [], undefined)
        return result
      } catch (err) {
        await this.run('ROLLBACK', [], undefined).catch(() => undefined)
        throw err
      }
    })
  }

  async close(): Promise<void> {
    try {
      if (!this.gone) await this.inTurn(() => this.send({ op: 'close' }))
    } finally {
      await this.worker.terminate()
      this.release()
    }
  }
}

/** The thread's script, next to this file in the sources (db/) or two levels up from the build (dist/db/). */
function threadScript(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  for (const candidate of [join(here, 'pglite-thread.mjs'), join(here, '..', '..', 'db', 'pglite-thread.mjs')]) {
    if (existsSync(candidate)) return candidate
  }
  throw new Error(`db/pglite-thread.mjs not found next to ${here}`)
}

interface Opening {
  readonly database: Promise<EmbeddedDatabase>
  /** Stops the thread while it opens (the start it was for failed); the lock is released. */
  cancel(): Promise<void>
}

function startThread(dataDir: string): Opening {
  let worker: Worker | undefined
  let release = () => {}
  const database = (async () => {
    mkdirSync(join(dataDir, 'pglite'), { recursive: true })
    release = lockDataDir(join(dataDir, 'pglite.pid'))
    // PostgreSQL's default 128 MB of shared buffers are set up at every open, a few hundred ms of CPU
    // on the way to `npm start` being ready; an embedded development database of a few rows needs 16 MB.
    const thread = new Worker(threadScript(), { workerData: { dir: join(dataDir, 'pglite'), options: { postgresqlconf: ['shared_buffers=16MB'] } } })
    worker = thread
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the embedded database did not open in ${OPEN_TIMEOUT_MS / 1000} s`)), OPEN_TIMEOUT_MS)
        thread.once('message', (m: { ready: boolean; error?: Parameters<typeof errorFrom>[0] }) => {
          clearTimeout(timer)
          if (m.ready) resolve()
          else reject(errorFrom(m.error!))
        })
        thread.once('error', (err) => (clearTimeout(timer), reject(err)))
        thread.once('exit', (code) => (clearTimeout(timer), reject(new Error(`the embedded database thread exited (${code})`))))
      })
    } catch (err) {
      await thread.terminate()
      release()
      throw err
    }
    thread.unref()
    return new ThreadClient(thread, release)
  })()
  return {
    database,
    async cancel() {
      await worker?.terminate()
      release()
      await database.then((db) => db.close()).catch(() => undefined)
    },
  }
}

/** Opens started early (`openEmbeddedDatabase(dir, { early: true })`) and not yet taken. */
const early = new Map<string, Opening>()

/**
 * The embedded database under `dataDir`, in its thread. With `early`, the open starts now and the
 * next call for the same directory takes it: `flowgate start` begins the open before it loads the
 * parts, so the second core opens the database while the first loads the code.
 */
export function openEmbeddedDatabase(dataDir: string, opts: { early?: boolean } = {}): Promise<EmbeddedDatabase> {
  const started = early.get(dataDir)
  if (started) {
    early.delete(dataDir)
    return started.database
  }
  const opening = startThread(dataDir)
  if (opts.early) {
    opening.database.catch(() => undefined) // thrown where it is taken
    early.set(dataDir, opening)
  }
  return opening.database
}

/** Stops the early opens nobody took: the start failed before its flows opened their database. */
export async function cancelEarlyOpens(): Promise<void> {
  const openings = [...early.values()]
  early.clear()
  await Promise.all(openings.map((o) => o.cancel()))
}

// Data dirs this process holds: a second open in the same process is refused like one from another.
const heldHere = new Set<string>()

/**
 * PGlite is single-process: a pid file, created exclusively, keeps a second opener (a seed, a
 * second worker, in this process or another) out. A file left by a dead process is taken over.
 * Returns the release, which may be called more than once.
 */
function lockDataDir(file: string): () => void {
  if (heldHere.has(file)) throw new DatabaseLockedError(process.pid, file)
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
      const pid = Number(readFileSync(file, 'utf8').trim())
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) throw new DatabaseLockedError(pid, file)
      rmSync(file, { force: true })
    }
  }
  heldHere.add(file)
  let held = true
  return () => {
    if (!held) return
    held = false
    heldHere.delete(file)
    rmSync(file, { force: true })
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
