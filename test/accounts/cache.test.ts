// The admin list reads through the cache, but the cache is never needed: unreachable or silent,
// the flow answers from the database within a bounded time.
import { createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closeCacheClient, createCacheClient } from '../../flows/cache.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { freePort } from '../harness/process.js'
import { ROOT_EMAIL, ROOT_PASSWORD, startAccountsStack, type AccountsStack } from './stack.js'

const log = createLogger({ logLevel: 'silent' })

async function listTwiceAndCreate(s: AccountsStack) {
  const token = await s.login('admin.login', ROOT_EMAIL, ROOT_PASSWORD)
  const t0 = Date.now()
  const first = await s.call('admin.list', {}, { token })
  expect(first).toMatchObject({ success: true, data: { total: 1 } })
  expect((await s.call('admin.create', { email: `n${Date.now()}@example.com`, password: 'password-123' }, { token })).status).toBe(201)
  const second = await s.call('admin.list', {}, { token })
  expect(second).toMatchObject({ success: true, data: { total: 2 } })
  return Date.now() - t0
}

describe('cache unreachable (nothing listening)', () => {
  let t: TestDatabase
  let s: AccountsStack
  let cache: ReturnType<typeof createCacheClient>
  beforeAll(async () => {
    t = await createTestDatabase('cache_down')
    cache = createCacheClient(parseConfig({ cacheUrl: `redis://127.0.0.1:${await freePort()}`, cacheCommandTimeoutMs: 100 }), log)
    s = await startAccountsStack({ databaseUrl: t.url, cache })
  })
  afterAll(async () => {
    await s?.stop()
    await closeCacheClient(cache)
    await t?.drop()
  })

  it('admin list and create work uncached; healthcheck reports redis down, degraded', async () => {
    expect(await listTwiceAndCreate(s)).toBeLessThan(2000)
    expect(await s.call('healthcheck', {})).toMatchObject({ data: { status: 'degraded', checks: { redis: { status: 'down' }, database: { status: 'up' } } } })
  })
})

describe('cache silent (accepts connections, never answers)', () => {
  let t: TestDatabase
  let s: AccountsStack
  let server: Server
  const sockets: Socket[] = []
  let cache: ReturnType<typeof createCacheClient>
  beforeAll(async () => {
    t = await createTestDatabase('cache_silent')
    // Answers the client's ready check (INFO) with an empty reply, then never answers again.
    server = createServer((sock) => {
      sockets.push(sock)
      let answered = false
      sock.on('data', (chunk) => {
        if (answered) return
        const text = chunk.toString()
        // One empty reply per command up to and including INFO (the client may send CLIENT SETINFO first).
        const commands = text.split(/\*\d+\r\n/).length - 1
        sock.write('$0\r\n\r\n'.repeat(Math.max(commands, 1)))
        answered = /\r\ninfo\r\n/i.test(text)
      })
    })
    const port = await freePort()
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r))
    cache = createCacheClient(parseConfig({ cacheUrl: `redis://127.0.0.1:${port}`, cacheCommandTimeoutMs: 100 }), log)
    s = await startAccountsStack({ databaseUrl: t.url, cache })
  })
  afterAll(async () => {
    await s?.stop()
    await closeCacheClient(cache)
    for (const sock of sockets) sock.destroy()
    await new Promise((r) => server.close(r))
    await t?.drop()
  })

  it('each cache command is bounded by CACHE_COMMAND_TIMEOUT_MS; the flow answers from the database', async () => {
    await new Promise((r) => setTimeout(r, 100))
    expect(cache.status).toBe('ready')
    const ms = await listTwiceAndCreate(s)
    // Two lists and one create each wait out at least one 100 ms cache timeout, and no more than a few.
    expect(ms).toBeGreaterThanOrEqual(300)
    expect(ms).toBeLessThan(3000)
  })
})
