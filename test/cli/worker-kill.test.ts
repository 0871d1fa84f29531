// A worker killed under load, as an operator would do it: two `flowgate flows` processes share the
// queue group, one gets SIGKILL while requests stream through a real gateway. The other takes every
// new request at once; the requests the killed one had taken answer 504 at their deadline (a queue
// group does not say which worker took a request, so the gateway cannot fail them sooner).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { captureLogs, startGateway, testConfig, waitForRoute, type TestGateway } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { runCli, tempDir, waitFor, type CliProcess } from '../harness/process.js'

const DEADLINE_MS = 1500
const CLIENTS = 24
const logs = captureLogs('silent')

let nats: NatsServer
let db: TestDatabase
let gw: TestGateway
const workers: CliProcess[] = []

function startFlows(): CliProcess {
  // A shared, migrated PostgreSQL rather than an embedded one per worker: two PGlite starts cost
  // seconds of CPU, and this test is about the kill, not the start.
  const p = runCli(['flows'], { NATS_URL: nats.url, DATABASE_URL: db.url, DATA_DIR: tempDir('kill'), LOG_LEVEL: 'warn', NODE_ENV: 'test' })
  workers.push(p)
  return p
}

beforeAll(async () => {
  ;[nats, db] = await Promise.all([startNats(), createTestDatabase('kill')])
  gw = await startGateway(testConfig(nats.url, { requestTimeoutMs: DEADLINE_MS }), logs.log)
})

afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL')
  await gw?.stop()
  await nats?.stop()
  await db?.drop()
})

interface Outcome {
  startedAt: number
  ms: number
  status: number
  errorCode: string | undefined
}

describe('a worker killed under load', () => {
  it('loses only what it had taken (504 at the deadline); the other worker serves everything after', { timeout: 30_000 }, async () => {
    const victim = startFlows()
    const survivor = startFlows()
    await waitFor(() => victim.output().includes('✔ flow worker') && survivor.output().includes('✔ flow worker'), 20_000)
    await waitForRoute(gw.gateway, 'POST', '/api/v1/orders/quote')

    const outcomes: Outcome[] = []
    let stop = false
    const client = async () => {
      while (!stop) {
        const startedAt = Date.now()
        const res = await gw.gateway.app.inject({ method: 'POST', url: '/api/v1/orders/quote?currency=EUR', payload: { items: [{ sku: 'coffee-beans', quantity: 2 }] } })
        const body = res.json<{ errorCode?: string }>()
        outcomes.push({ startedAt, ms: Date.now() - startedAt, status: res.statusCode, errorCode: body.errorCode })
      }
    }
    const clients = Array.from({ length: CLIENTS }, client)

    await new Promise((r) => setTimeout(r, 500))
    victim.child.kill('SIGKILL')
    await victim.exit
    const killedAt = Date.now()
    // Long enough for the clients caught by the kill to get their 504 and go on with the survivor.
    await new Promise((r) => setTimeout(r, DEADLINE_MS + 1000))
    stop = true
    await Promise.all(clients)

    const statuses = new Set(outcomes.map((o) => o.status))
    expect([...statuses].filter((s) => s !== 200 && s !== 504)).toEqual([])
    // Nothing hangs: the slowest answer is the deadline plus scheduling.
    expect(Math.max(...outcomes.map((o) => o.ms))).toBeLessThan(DEADLINE_MS + 1000)
    const lost = outcomes.filter((o) => o.status === 504)
    // Lost: what the victim had taken, and what reached it before the server saw its connection close;
    // at most one per client (a client waits for its answer), each a timeout envelope.
    expect(lost.length).toBeLessThanOrEqual(CLIENTS)
    for (const o of lost) {
      expect(o.errorCode).toBe('GATEWAY_TIMEOUT')
      // The server sees the connection close a moment after the process is gone; on a busy machine, some ms.
      expect(o.startedAt).toBeLessThan(killedAt + 100)
      expect(o.ms).toBeGreaterThanOrEqual(DEADLINE_MS - 50)
    }
    const after = outcomes.filter((o) => o.startedAt > killedAt + 300)
    expect(after.length).toBeGreaterThan(50)
    expect(after.filter((o) => o.status !== 200)).toEqual([])
    expect(survivor.child.exitCode).toBeNull()
  })
})
