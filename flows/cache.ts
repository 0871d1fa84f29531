// The Redis client flows use, pointed at the cache proxy by default. Built to fail fast
// (lib/redis.ts): callers treat a rejection as a cache miss.
import { Redis } from 'ioredis'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { failFastRedisOptions } from '../lib/redis.js'

/** Where flows reach Redis: CACHE_URL, else the cache proxy on CACHE_PROXY_PORT. */
export function cacheUrl(config: Pick<Config, 'cacheUrl' | 'cacheProxyPort'>): string {
  return config.cacheUrl ?? `redis://127.0.0.1:${config.cacheProxyPort}`
}

export function createCacheClient(config: Pick<Config, 'cacheUrl' | 'cacheProxyPort' | 'cacheCommandTimeoutMs'>, log: Logger): Redis {
  const redis = new Redis(cacheUrl(config), failFastRedisOptions(config.cacheCommandTimeoutMs))
  // ioredis emits an error per failed reconnect; log the transitions only.
  let up = false
  redis.on('ready', () => {
    up = true
    log.info('cache connected')
  })
  redis.on('error', (err: Error) => {
    if (up) log.warn({ error: err.message }, 'cache connection lost; flows read the database until it returns')
    up = false
  })
  return redis
}

/** Closes the client without waiting on a dead connection. */
export async function closeCacheClient(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect())
  else redis.disconnect()
}

/** The healthcheck probe: rejects with a short reason (never the URL, which may hold a password). */
export async function probeCache(redis: Redis): Promise<void> {
  if (redis.status !== 'ready') throw new Error(`not connected (${redis.status})`)
  await redis.ping()
}
