// The embedded database's own thread. PGlite is PostgreSQL compiled to WebAssembly: opening it costs
// about a second of CPU and every query runs synchronously in the thread that holds it. Here, that
// thread is not the event loop that serves HTTP and NATS (under `flowgate start` the gateway, the
// flows and the subscriber share one), and its start runs on the second core while the parts load.
// Plain JavaScript because the same file runs from source (tests) and from the build.
// db/pglite-client.ts is the other end: one message per query, answered with the result or the error.
import { setFlagsFromString } from 'node:v8'
import { parentPort, workerData } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'

// V8 runs WebAssembly in its baseline code first and recompiles a function with its optimising
// compiler once it has run enough (its tiering budget). Opening PostgreSQL runs a lot of code once:
// with the default budget, V8 spent about 170 ms of CPU (of 600) optimising functions that were
// not hot again, on the same two cores the parts load on; with the budget raised, `flowgate start`
// was ready in 1.3 s instead of 1.7 s. A WebAssembly instance takes the budget in effect when it is created, so
// the higher one applies to PostgreSQL's first runs only: it is set back (V8's default) once open,
// and a function that does turn out hot is optimised when it spends the higher budget.
const OPEN_TIERING_BUDGET = 180_000_000
const DEFAULT_TIERING_BUDGET = 1_800_000

/** The fields of a PostgreSQL error worth keeping across the thread boundary (SQLSTATE first). */
const ERROR_FIELDS = ['code', 'detail', 'hint', 'constraint', 'severity', 'schema', 'table', 'column', 'dataType', 'routine']

const keep = (value) => value

function plain(err) {
  const out = { name: String(err?.name ?? 'Error'), message: String(err?.message ?? err) }
  for (const key of ERROR_FIELDS) if (typeof err?.[key] === 'string') out[key] = err[key]
  return out
}

let db
try {
  setFlagsFromString(`--wasm-tiering-budget=${OPEN_TIERING_BUDGET}`)
  db = await PGlite.create(workerData.dir, workerData.options)
  parentPort.postMessage({ ready: true })
} catch (err) {
  parentPort.postMessage({ ready: false, error: plain(err) })
} finally {
  setFlagsFromString(`--wasm-tiering-budget=${DEFAULT_TIERING_BUDGET}`)
}

parentPort.on('message', async (m) => {
  try {
    if (m.op === 'close') {
      await db?.close()
      parentPort.postMessage({ id: m.id, ok: true })
      parentPort.close()
      return
    }
    if (!db) throw new Error('the embedded database did not open')
    // Types whose text the caller keeps as it is (Drizzle keeps dates and intervals as strings).
    const parsers = Array.isArray(m.keepText) ? Object.fromEntries(m.keepText.map((oid) => [oid, keep])) : undefined
    const result = await db.query(m.sql, m.params, { rowMode: m.rowMode, parsers })
    parentPort.postMessage({ id: m.id, ok: true, result: { rows: result.rows, fields: result.fields, affectedRows: result.affectedRows } })
  } catch (err) {
    parentPort.postMessage({ id: m.id, ok: false, error: plain(err) })
  }
})
