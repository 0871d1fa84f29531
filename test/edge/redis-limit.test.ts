// The Redis store against a real redis-server: one limit shared by two gateways, atomic under
// concurrency, and failing open (counted, logged once per interval) while Redis is down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRedisStore, type RedisStore } from '../../server/edge/redis-store.js'
import { captureLogs } from '../harness/stack.js'
import { startRedis, type RedisServer } from '../harness/redis.js'
import { edgeApp, silent, testConfig } from './edge-app.js'
import { waitFor } from '../events/edge-stack.js'

let redis: RedisServer
const opened: RedisStore[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  for (const s of opened) await s.close()
  await redis?.stop()
})

async function store(log = silent) {
  const s = createRedisStore({ url: redis.url, timeoutMs: 200, log })
  opened.push(s)
  await s.ready()
  return s
}

describe('Redis rate-limit store', () => {
  const config = testConfig({ rateLimitCapacity: 5, rateLimitRefillPerSec: 0.01, rateLimitStore: 'redis' })

  it('shares one limit between two gateway instances', async () => {
    const a = await edgeApp(config, { store: await store() })
    const b = await edgeApp(config, { store: await store() })
    const statuses: number[] = []
    for (let i = 0; i < 8; i++) {
      const app = i % 2 === 0 ? a : b
      statuses.push((await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.20' })).statusCode)
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429])
    const limited = await b.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.20' })
    expect(limited.json()).toMatchObject({ errorCode: 'RATE_LIMITED', status: 429 })
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(limited.headers['ratelimit-remaining']).toBe('0')
    await a.close()
    await b.close()
  })

  it('is atomic: concurrent requests on both instances take exactly capacity tokens', async () => {
    const a = await edgeApp(config, { store: await store() })
    const b = await edgeApp(config, { store: await store() })
    const all = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).inject({ url: '/api/v1/things', remoteAddress: '198.51.100.21' })),
    )
    expect(all.filter((r) => r.statusCode === 200)).toHaveLength(5)
    expect(all.filter((r) => r.statusCode === 429)).toHaveLength(35)
    await a.close()
    await b.close()
  })

  it('fails open when Redis is not there at start', async () => {
    const { freePort } = await import('../harness/process.js')
    const sink = captureLogs('warn')
    const s = createRedisStore({ url: `redis://127.0.0.1:${await freePort()}`, timeoutMs: 100, log: sink.log })
    opened.push(s)
    const app = await edgeApp(config, { store: s })
    const started = Date.now()
    for (let i = 0; i < 10; i++) expect((await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.24' })).statusCode).toBe(200)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(s.failures()).toBe(10)
    expect(sink.lines.filter((l) => l.msg === 'rate-limit store (Redis) unavailable: failing open')).toHaveLength(1)
    await app.close()
  })

  it('fails open while Redis is down, counts it, logs once per interval, and limits again after', async () => {
    const sink = captureLogs('warn')
    const s = await store(sink.log)
    const app = await edgeApp(config, { store: s })
    await waitFor('redis ready', () => app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.22' }), (r) => r.statusCode === 200)
    await redis.kill()
    const started = Date.now()
    const statuses: number[] = []
    for (let i = 0; i < 30; i++) statuses.push((await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.22' })).statusCode)
    expect(statuses.every((st) => st === 200)).toBe(true)
    expect(Date.now() - started).toBeLessThan(30 * 200 + 1000) // each check bounded by the timeout
    expect(s.failures()).toBeGreaterThanOrEqual(30)
    const warnings = sink.lines.filter((l) => l.msg === 'rate-limit store (Redis) unavailable: failing open')
    expect(warnings).toHaveLength(1)

    await redis.restart()
    // a fresh Redis: the bucket is new, so 5 pass and then the limit is back
    await waitFor(
      'limit enforced again',
      async () => (await app.inject({ url: '/api/v1/things', remoteAddress: '198.51.100.23' })).statusCode,
      (st) => st === 429,
      10_000,
      50,
    )
    await app.close()
  })
})
