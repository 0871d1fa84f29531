// Redis clients that fail fast, for callers that would rather do without Redis than wait for it
// (the flows' cache, the shared rate-limit store): no offline queue, so a command while disconnected
// rejects at once; a bounded command timeout; no retries per command; reconnects in the background.
import type { RedisOptions } from 'ioredis'

export function failFastRedisOptions(commandTimeoutMs: number): RedisOptions {
  return {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs * 4, 1000),
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  }
}
