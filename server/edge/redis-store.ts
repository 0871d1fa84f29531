// Buckets in Redis, so several gateways share one limit. One Lua script per request reads, refills,
// takes and writes atomically, on Redis's own clock (gateways' clocks may disagree). When Redis
// cannot answer in time the request goes through (fail open): counted, and logged once per interval.
import { Redis } from 'ioredis'
import { Counter, type Registry } from 'prom-client'
import type { Logger } from '../../lib/logger.js'
import { failFastRedisOptions } from '../../lib/redis.js'
import { throttledWarning } from '../../lib/throttle.js'
import { decide, openDecision, type Decision, type Limit, type RateLimitStore } from './token-bucket.js'

const KEY_PREFIX = 'flowgate:rl:'
const LOG_EVERY_MS = 10_000

// Mirrors takeToken(). Returns {allowed, tokens as a string} (Lua numbers would be truncated to integers).
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
local elapsed = math.max(0, now - at) / 1000
tokens = math.min(capacity, tokens + elapsed * refill)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / refill * 1000) + 1000)
return {allowed, tostring(tokens)}
`

type RedisWithTake = Redis & { flowgateTake(key: string, capacity: number, refillPerSec: number): Promise<[number, string]> }

export interface RedisStore extends RateLimitStore {
  readonly kind: 'redis'
  /** Requests let through because Redis did not answer. */
  failures(): number
  /** Resolves once connected (until then, and during outages, requests go through). */
  ready(): Promise<void>
}

/** A Redis-backed store; never throws from take(). */
export function createRedisStore(opts: { url: string; timeoutMs: number; log: Logger; registry?: Registry; client?: Redis }): RedisStore {
  const client = (opts.client ??
    // Fail fast while Redis is away instead of queueing requests behind a reconnect.
    new Redis(opts.url, failFastRedisOptions(opts.timeoutMs))) as RedisWithTake
  client.defineCommand('flowgateTake', { numberOfKeys: 1, lua: TAKE_SCRIPT })
  let failures = 0
  const warn = throttledWarning(opts.log, LOG_EVERY_MS)
  const counter = opts.registry
    ? new Counter({ name: 'flowgate_rate_limit_store_failures_total', help: 'Rate-limit checks let through because the store did not answer', registers: [opts.registry] })
    : undefined
  // ioredis reports connection errors as events; they are the same outage the failures below count.
  client.on('error', (err: Error) => noteFailure(err))
  const noteFailure = (err: unknown) => warn({ err }, 'rate-limit store (Redis) unavailable: failing open')

  return {
    kind: 'redis',
    async take(key: string, limit: Limit): Promise<Decision> {
      try {
        const [allowed, tokens] = await client.flowgateTake(KEY_PREFIX + key, limit.capacity, limit.refillPerSec)
        return decide(allowed === 1, Number(tokens), limit)
      } catch (err) {
        failures++
        counter?.inc()
        noteFailure(err)
        return openDecision(limit)
      }
    },
    failures: () => failures,
    ready: () => (client.status === 'ready' ? Promise.resolve() : new Promise((resolve) => client.once('ready', () => resolve()))),
    async close() {
      if (!opts.client) client.disconnect()
    },
  }
}
