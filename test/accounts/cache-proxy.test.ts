// The admin list through the real cache proxy in front of a real Redis: a page is cached (tagged),
// served from the cache, and invalidated by tag when an admin is created.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { start as startCacheProxy, type RunningCacheProxy } from '../../cache-proxy/main.js'
import { admins } from '../../db/schema.js'
import { ADMIN_LIST_TAG, adminListCache } from '../../flows/accounts/admin-cache.js'
import type { FlowContext } from '../../flows/context.js'
import { closeCacheClient, createCacheClient } from '../../flows/cache.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { startRedis, type RedisServer } from '../harness/redis.js'
import { ROOT_EMAIL, ROOT_PASSWORD, startAccountsStack, type AccountsStack } from './stack.js'

let t: TestDatabase
let redis: RedisServer
let proxy: RunningCacheProxy
let cache: Redis
let direct: Redis
let s: AccountsStack

beforeAll(async () => {
  t = await createTestDatabase('cache_proxy')
  redis = await startRedis()
  const config = parseConfig({ redisUrl: redis.url, cacheProxyHost: '127.0.0.1', cacheProxyPort: 0, logLevel: 'silent', cacheCommandTimeoutMs: 1000 })
  proxy = await startCacheProxy(config, createLogger(config))
  cache = createCacheClient(parseConfig({ ...config, cacheProxyPort: proxy.address.port }), createLogger(config))
  direct = new Redis(redis.url)
  s = await startAccountsStack({ databaseUrl: t.url, cache })
})
afterAll(async () => {
  await s?.stop()
  if (cache) await closeCacheClient(cache)
  direct?.disconnect()
  await proxy?.close()
  await redis?.stop()
  await t?.drop()
})

it('serves a cached page until an admin is created, then reads the database again', async () => {
  const token = await s.login('admin.login', ROOT_EMAIL, ROOT_PASSWORD)
  const list = async () => (await s.call('admin.list', { page: 1, limit: 50 }, { token })).data as { total: number; items: Array<{ email: string }> }

  expect((await list()).total).toBe(1)
  const keys = await direct.keys('flowgate:admins:list:*')
  expect(keys).toEqual(['flowgate:admins:list:v2:0:1:50'])
  expect(await direct.ttl(keys[0]!)).toBeGreaterThan(0)

  // Written behind the flow's back: the cached page does not show it yet.
  await t.handle.db.insert(admins).values({ email: 'sneaky@example.com', passwordHash: 'x' })
  expect((await list()).total).toBe(1)

  const created = await s.call('admin.create', { email: 'new@example.com', password: 'password-123' }, { token })
  expect(created.status).toBe(201)
  expect(await direct.exists(keys[0]!)).toBe(0)
  const after = await list()
  expect(after.total).toBe(3)
  expect(after.items.map((a) => a.email)).toEqual([ROOT_EMAIL, 'sneaky@example.com', 'new@example.com'])
  expect(ADMIN_LIST_TAG).toBe('flowgate:admins')

  // A malformed entry is a miss (read from the database), never a 500.
  for (const garbage of ['not json', '{"items":"nope"}']) {
    await cache.set(`flowgate:admins:list:v2:${await direct.get('flowgate:admins:generation')}:1:50`, garbage)
    const r = await s.call('admin.list', { page: 1, limit: 50 }, { token })
    expect(r).toMatchObject({ success: true, data: { total: 3 } })
  }
})

it('a page read before an admin was created and written after it is never served', async () => {
  const ctx = { deps: { cache }, log: createLogger({ logLevel: 'silent' }) } as unknown as FlowContext
  const page = { items: [], total: 99, page: 7, limit: 3 }
  const racing = await adminListCache(ctx).read(7, 3) // the list flow saw generation N, then read the database...
  expect(racing.value).toBeUndefined()
  await adminListCache(ctx).invalidate() // ...an admin was created meanwhile...
  await racing.write(page) // ...and the list flow stores what it read.
  expect((await adminListCache(ctx).read(7, 3)).value).toBeUndefined()
  const fresh = await adminListCache(ctx).read(7, 3)
  await fresh.write(page)
  expect((await adminListCache(ctx).read(7, 3)).value).toEqual(page)
})
