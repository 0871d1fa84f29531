// Token-bucket arithmetic and the store interface. A bucket holds up to `capacity` tokens and
// gains `refillPerSec` per second; a request takes one. Pure functions, so the memory store and
// the tests share them, and the Redis Lua script mirrors them line for line.

export interface Limit {
  capacity: number
  refillPerSec: number
}

export interface Decision {
  allowed: boolean
  /** Whole tokens left after this request. */
  remaining: number
  /** Seconds until the bucket is full again (RateLimit-Reset). */
  resetSec: number
  /** Seconds until one token is available (Retry-After); 0 when allowed. */
  retryAfterSec: number
}

/** Where buckets live: this process (memory) or Redis (shared by gateways). */
export interface RateLimitStore {
  readonly kind: 'memory' | 'redis'
  take(key: string, limit: Limit): Decision | Promise<Decision>
  close(): Promise<void>
}

export interface BucketState {
  tokens: number
  updatedMs: number
}

/** Refills `state` up to `nowMs`, takes one token if there is one, and says what happened. Mutates `state`. */
export function takeToken(state: BucketState, limit: Limit, nowMs: number): Decision {
  const elapsedSec = Math.max(0, nowMs - state.updatedMs) / 1000
  let tokens = Math.min(limit.capacity, state.tokens + elapsedSec * limit.refillPerSec)
  const allowed = tokens >= 1
  if (allowed) tokens -= 1
  state.tokens = tokens
  state.updatedMs = nowMs
  return decide(allowed, tokens, limit)
}

export function decide(allowed: boolean, tokens: number, limit: Limit): Decision {
  return {
    allowed,
    remaining: Math.floor(tokens),
    resetSec: Math.ceil((limit.capacity - tokens) / limit.refillPerSec),
    retryAfterSec: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / limit.refillPerSec)),
  }
}

/** Milliseconds after which an untouched bucket is full again, so forgetting it changes nothing. */
export function idleMs(limit: Limit): number {
  return Math.ceil((limit.capacity / limit.refillPerSec) * 1000)
}

/** The decision when the store cannot answer: let the request through (fail open). */
export function openDecision(limit: Limit): Decision {
  return { allowed: true, remaining: Math.max(0, limit.capacity - 1), resetSec: 0, retryAfterSec: 0 }
}
