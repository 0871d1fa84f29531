// The embedded path (no DATABASE_URL): PGlite under DATA_DIR/pglite. First the flow worker process
// as `npm start` runs it (flows/main.ts start(): migrations and the development seed at start,
// database and redis probes, a clean stop that releases the data dir); then the same data dir
// reopened and every account flow served from it. Also: the data dir is locked against a second process.
import { existsSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DatabaseLockedError, openDatabase } from '../../db/client.js'
import { start } from '../../flows/main.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { subjects } from '../../lib/subjects.js'
import { startNats } from '../harness/nats.js'
import { freePort, tempDir } from '../harness/process.js'
import { ROOT_EMAIL, ROOT_PASSWORD, startAccountsStack, type AccountsStack } from './stack.js'

let dataDir: string

beforeAll(() => {
  dataDir = tempDir('pglite')
})
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

describe('PGlite', () => {
  it('the worker process migrates, seeds (development), serves, reports probes and stops cleanly', async () => {
    const nats = await startNats()
    try {
      const config = parseConfig({
        nodeEnv: 'development',
        natsUrl: nats.url,
        dataDir,
        logLevel: 'silent',
        adminEmail: ROOT_EMAIL,
        adminPassword: ROOT_PASSWORD,
        seedClientSecret: 'boot-client-secret-0123',
        cacheUrl: `redis://127.0.0.1:${await freePort()}`,
      })
      const running = await start(config, createLogger(config), () => {})
      expect(running.describe).toContain('database pglite')
      expect(existsSync(join(dataDir, 'pglite', 'PG_VERSION'))).toBe(true)
      expect(existsSync(join(dataDir, 'pglite.pid'))).toBe(true)
      const nc = await connect({ servers: nats.url })
      try {
        const req = async (flow: string, body: unknown) =>
          JSON.parse((await nc.request(subjects.flow(flow), JSON.stringify(body), { timeout: 10_000 })).string())
        expect(await req('admin.login', { email: ROOT_EMAIL, password: ROOT_PASSWORD })).toMatchObject({ success: true })
        expect(await req('healthcheck', {})).toMatchObject({
          data: { status: 'degraded', checks: { database: { status: 'up' }, redis: { status: 'down' }, nats: { status: 'up' } } },
        })
        // A second worker on the same data dir (what `flowgate flows` started by hand does) cannot
        // open PGlite: it hosts the flows that need no database, and database flows keep working.
        const second = await start(config, createLogger(config), () => {})
        try {
          expect(second.describe).toMatch(/flow worker: 2 flows .*database none/)
          const health = await Promise.all(Array.from({ length: 20 }, () => req('healthcheck', {})))
          expect(health.every((r) => r.success === true)).toBe(true)
          const logins = await Promise.all(Array.from({ length: 5 }, () => req('admin.login', { email: ROOT_EMAIL, password: ROOT_PASSWORD })))
          expect(logins.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
        } finally {
          expect(await second.close()).toBe(true)
        }
      } finally {
        await nc.close()
      }
      expect(await running.close()).toBe(true)
      expect(existsSync(join(dataDir, 'pglite.pid'))).toBe(false)
    } finally {
      await nats.stop()
    }
  }, 60_000)

  describe('reopened', () => {
    let s: AccountsStack
    beforeAll(async () => {
      s = await startAccountsStack({ dataDir })
    }, 60_000)
    afterAll(() => s?.stop())

    it('serves the account flows', async () => {
      expect(s.database.kind).toBe('pglite')
      const token = await s.login('admin.login', ROOT_EMAIL, ROOT_PASSWORD)
      const created = await s.call('admin.create', { email: 'second@example.com', password: 'password-123' }, { token })
      expect(created.status).toBe(201)
      expect((await s.call('admin.create', { email: 'SECOND@example.com', password: 'password-123' }, { token })).status).toBe(409)
      const list = await s.call('admin.list', { page: 1, limit: 10 }, { token })
      expect(list).toMatchObject({ success: true, data: { total: 2, page: 1, limit: 10 } })
      expect((await s.call('customer.register', { email: 'c@example.com', password: 'password-123' })).status).toBe(201)
      const ctoken = await s.login('customer.login', 'c@example.com', 'password-123')
      expect(await s.call('customer.me', {}, { token: ctoken })).toMatchObject({ data: { email: 'c@example.com' } })
      expect(await s.call('healthcheck', {})).toMatchObject({ data: { checks: { database: { status: 'up' } } } })
    })

    it('migrating again is a no-op', async () => {
      await s.database.migrate()
      expect((await s.call('admin.login', { email: ROOT_EMAIL, password: ROOT_PASSWORD })).status).toBe(200)
    })
  })

  it('refuses to open a data dir held by another live process', async () => {
    const other = tempDir('pglite-locked')
    try {
      // pid 1 is always alive: the data dir looks in use by someone else.
      writeFileSync(join(other, 'pglite.pid'), '1')
      await expect(openDatabase(parseConfig({ dataDir: other }), createLogger({ logLevel: 'silent' }))).rejects.toBeInstanceOf(DatabaseLockedError)
    } finally {
      rmSync(other, { recursive: true, force: true })
    }
  })
})
