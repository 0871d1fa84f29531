// Buckets in this process. The map is kept in least-recently-used order (a touched key moves to the
// end), so it never holds more than `maxKeys`: under a flood of distinct addresses the idlest bucket
// goes first. A sweep also drops buckets idle long enough to be full again, which loses nothing.
import { idleMs, takeToken, type BucketState, type Decision, type Limit, type RateLimitStore } from './token-bucket.js'

const SWEEP_EVERY_MS = 10_000

export interface MemoryStore extends RateLimitStore {
  readonly kind: 'memory'
  take(key: string, limit: Limit): Decision
  size(): number
  /** Drops buckets that have been idle long enough to be full; returns how many. */
  sweep(nowMs?: number): number
}

export function createMemoryStore(opts: { maxKeys: number; now?: () => number }): MemoryStore {
  const now = opts.now ?? Date.now
  const buckets = new Map<string, BucketState & { idleMs: number }>()
  const timer = setInterval(() => sweep(), SWEEP_EVERY_MS)
  timer.unref()

  function sweep(nowMs = now()): number {
    let dropped = 0
    // Oldest first; the first bucket still refilling ends the sweep (everything after is newer).
    for (const [key, b] of buckets) {
      if (nowMs - b.updatedMs < b.idleMs) break
      buckets.delete(key)
      dropped++
    }
    return dropped
  }

  return {
    kind: 'memory',
    take(key: string, limit: Limit): Decision {
      const nowMs = now()
      let bucket = buckets.get(key)
      if (bucket === undefined) {
        bucket = { tokens: limit.capacity, updatedMs: nowMs, idleMs: idleMs(limit) }
        if (buckets.size >= opts.maxKeys) buckets.delete(buckets.keys().next().value as string)
      } else {
        buckets.delete(key)
      }
      buckets.set(key, bucket)
      return takeToken(bucket, limit, nowMs)
    },
    size: () => buckets.size,
    sweep,
    async close() {
      clearInterval(timer)
      buckets.clear()
    },
  }
}
