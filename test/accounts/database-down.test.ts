// The database goes away under a running worker: healthcheck reports it (degraded, not failed),
// login answers 503 SERVICE_UNAVAILABLE quickly, nothing crashes, and it all recovers when the
// database returns. Uses a private PostgreSQL server so stopping it affects no one else.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { postgresServerUnavailable, startPostgresServer, type PostgresServer } from '../harness/postgres.js'
import { ROOT_EMAIL, ROOT_PASSWORD, startAccountsStack, type AccountsStack } from './stack.js'

const unavailable = postgresServerUnavailable()
if (unavailable) console.warn(`skipping the database-stopped test: ${unavailable}`)

let pg: PostgresServer
let s: AccountsStack

beforeAll(async () => {
  if (unavailable) return
  pg = await startPostgresServer()
  s = await startAccountsStack({ databaseUrl: pg.url, config: { dbConnectTimeoutMs: 500, dbStatementTimeoutMs: 1000 } })
})
afterAll(async () => {
  try {
    await s?.stop()
  } finally {
    await pg?.stop()
  }
})

it.skipIf(unavailable)('healthcheck degrades, login is 503, and both recover when PostgreSQL returns', async () => {
  const login = () => s.call('admin.login', { email: ROOT_EMAIL, password: ROOT_PASSWORD })
  expect((await login()).status).toBe(200)
  expect(await s.call('healthcheck', {})).toMatchObject({ data: { status: 'ok', checks: { database: { status: 'up' } } } })

  await pg.pause()

  const health = await s.call('healthcheck', {})
  expect(health).toMatchObject({ success: true, status: 200, data: { status: 'degraded', checks: { database: { status: 'down' }, nats: { status: 'up' } } } })
  const t0 = Date.now()
  const down = await login()
  expect(down).toMatchObject({ success: false, status: 503, errorCode: 'SERVICE_UNAVAILABLE', message: 'Database unavailable' })
  expect(Date.now() - t0).toBeLessThan(3000)
  // The other flows fail the same way, and the worker keeps serving.
  expect((await s.call('customer.register', { email: 'later@example.com', password: 'password-123' })).status).toBe(503)
  expect((await s.call('admin.login', { email: 'bad', password: 'x' })).status).toBe(400)

  await pg.restart()

  let back = await login()
  for (let i = 0; i < 20 && back.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 250))
    back = await login()
  }
  expect(back.status).toBe(200)
  expect(await s.call('healthcheck', {})).toMatchObject({ data: { status: 'ok', checks: { database: { status: 'up' } } } })
  expect((await s.call('customer.register', { email: 'later@example.com', password: 'password-123' })).status).toBe(201)
})
