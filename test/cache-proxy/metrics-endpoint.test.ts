// A proxy run on its own serves its metrics over HTTP when CACHE_PROXY_METRICS_PORT is set.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { start, type RunningCacheProxy } from '../../cache-proxy/main.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { freePort } from '../harness/process.js'
import { startRedis, type RedisServer } from '../harness/redis.js'

let redis: RedisServer
let proxy: RunningCacheProxy
let metricsPort: number

beforeAll(async () => {
  redis = await startRedis()
  metricsPort = await freePort()
  const config = parseConfig({ redisUrl: redis.url, cacheProxyPort: 0, cacheProxyMetricsPort: metricsPort, logLevel: 'silent' })
  proxy = await start(config, createLogger(config))
})

afterAll(async () => {
  expect(await proxy?.close()).toBe(true)
  await redis?.stop()
})

describe('cache proxy metrics endpoint', () => {
  it('counts a miss then a hit and serves them at /metrics; anything else is 404', async () => {
    const client = new Redis(proxy.address.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
    try {
      await client.set('m:key', 'v')
      await client.get('m:key')
      await client.get('m:key')
    } finally {
      client.disconnect()
    }
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toMatch(/^flowgate_cache_hits_total [1-9]/m)
    expect(text).toMatch(/^flowgate_cache_misses_total [1-9]/m)
    expect((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status).toBe(404)
  })
})
