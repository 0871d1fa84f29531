// The local reply cache: bounded in bytes, CLOCK (second-chance) eviction so that a hit only sets a
// flag instead of moving a list node, a hard expiry per entry, and an index from Redis key to the
// entries built from it so that one invalidation drops every cached reply that read the key.

export interface CacheStats {
  hits: number
  misses: number
  coalesced: number
  fills: number
  fillsDiscarded: number
  evictions: number
  expirations: number
  invalidations: number
  invalidatedEntries: number
  flushes: number
  refreshes: number
  upstreamErrors: number
  protocolErrors: number
  outputLimitDisconnects: number
  waiterTimeouts: number
  tagInvalidations: number
  tagErrors: number
  refusedCommands: number
  requestLimitDisconnects: number
  redisHung: number
}

export function newStats(): CacheStats {
  return {
    hits: 0,
    misses: 0,
    coalesced: 0,
    fills: 0,
    fillsDiscarded: 0,
    evictions: 0,
    expirations: 0,
    invalidations: 0,
    invalidatedEntries: 0,
    flushes: 0,
    refreshes: 0,
    upstreamErrors: 0,
    protocolErrors: 0,
    outputLimitDisconnects: 0,
    waiterTimeouts: 0,
    tagInvalidations: 0,
    tagErrors: 0,
    refusedCommands: 0,
    requestLimitDisconnects: 0,
    redisHung: 0,
  }
}

export interface Entry {
  readonly cacheKey: string
  readonly value: Buffer
  readonly redisKeys: readonly string[]
  readonly size: number
  readonly expiresAt: number
  /** After this time a hit on a hot entry refreshes it in the background. */
  readonly refreshAt: number
  /** What to send upstream to refresh it, and where (opaque to the cache). */
  readonly refresh: unknown
  ref: boolean
  refreshing: boolean
}

/** Something in flight that must not be stored if one of its keys is invalidated meanwhile. */
export interface Invalidatable {
  stale: boolean
}

const ENTRY_OVERHEAD = 160

export class LocalCache {
  bytes = 0
  private readonly entries = new Map<string, Entry>()
  private readonly byKey = new Map<string, Set<Entry>>()
  private readonly inflight = new Map<string, Set<Invalidatable>>()

  constructor(
    private maxBytes: number,
    private readonly stats: CacheStats,
  ) {}

  get size(): number {
    return this.entries.size
  }

  setMaxBytes(maxBytes: number): void {
    this.maxBytes = maxBytes
    this.evictToFit(0)
  }

  get(cacheKey: string, now: number): Entry | undefined {
    const e = this.entries.get(cacheKey)
    if (e === undefined) return undefined
    if (now >= e.expiresAt) {
      this.remove(e)
      this.stats.expirations++
      return undefined
    }
    e.ref = true
    return e
  }

  /** Stores an entry, replacing one under the same key; false when it cannot fit. */
  set(cacheKey: string, value: Buffer, redisKeys: readonly string[], expiresAt: number, refreshAt: number, refresh: unknown): boolean {
    let size = ENTRY_OVERHEAD + value.length + cacheKey.length
    for (const k of redisKeys) size += k.length + 48
    if (size > this.maxBytes) return false
    const old = this.entries.get(cacheKey)
    if (old !== undefined) this.remove(old)
    this.evictToFit(size)
    const e: Entry = { cacheKey, value, redisKeys, size, expiresAt, refreshAt, refresh, ref: false, refreshing: false }
    this.entries.set(cacheKey, e)
    this.bytes += size
    for (const k of redisKeys) {
      let set = this.byKey.get(k)
      if (set === undefined) this.byKey.set(k, (set = new Set()))
      set.add(e)
    }
    return true
  }

  /** Registers a fill in flight for its keys, so that invalidating one of them marks it stale. */
  track(fill: Invalidatable, redisKeys: readonly string[]): void {
    for (const k of redisKeys) {
      let set = this.inflight.get(k)
      if (set === undefined) this.inflight.set(k, (set = new Set()))
      set.add(fill)
    }
  }

  untrack(fill: Invalidatable, redisKeys: readonly string[]): void {
    for (const k of redisKeys) {
      const set = this.inflight.get(k)
      if (set === undefined) continue
      set.delete(fill)
      if (set.size === 0) this.inflight.delete(k)
    }
  }

  /** Drops every entry built from a Redis key and marks fills of it in flight stale. */
  invalidate(redisKey: string): number {
    const fills = this.inflight.get(redisKey)
    if (fills !== undefined) for (const f of fills) f.stale = true
    const set = this.byKey.get(redisKey)
    if (set === undefined) return 0
    this.stats.invalidations++
    let n = 0
    for (const e of set) {
      this.remove(e)
      n++
    }
    this.stats.invalidatedEntries += n
    return n
  }

  /** Drops the entries whose `refresh` info passes `test` (those read on a connection that closed). */
  dropWhere(test: (refresh: unknown) => boolean): number {
    let n = 0
    for (const e of this.entries.values()) {
      if (!test(e.refresh)) continue
      this.remove(e)
      n++
    }
    return n
  }

  /** Drops everything, including fills in flight. */
  flush(): void {
    for (const set of this.inflight.values()) for (const f of set) f.stale = true
    this.entries.clear()
    this.byKey.clear()
    this.bytes = 0
    this.stats.flushes++
  }

  private remove(e: Entry): void {
    if (this.entries.get(e.cacheKey) !== e) return
    this.entries.delete(e.cacheKey)
    this.bytes -= e.size
    for (const k of e.redisKeys) {
      const set = this.byKey.get(k)
      if (set === undefined) continue
      set.delete(e)
      if (set.size === 0) this.byKey.delete(k)
    }
  }

  private evictToFit(incoming: number): void {
    // Second chance: a referenced entry is moved to the back once with its flag cleared.
    while (this.bytes + incoming > this.maxBytes && this.entries.size > 0) {
      for (const e of this.entries.values()) {
        if (e.ref) {
          e.ref = false
          this.entries.delete(e.cacheKey)
          this.entries.set(e.cacheKey, e)
          continue
        }
        this.remove(e)
        this.stats.evictions++
        break
      }
    }
  }
}

/**
 * Sampled, decaying top-K of requested cache keys (Space-Saving with exponential decay): bounded
 * by `capacity` entries whatever the key space, and a key's score halves every `halfLifeMs`
 * without traffic, so yesterday's hot key cools down.
 */
export class HotKeys {
  private readonly scores = new Map<string, { score: number; at: number }>()
  private tick = 0
  private every: number

  constructor(
    private opts: { sampleRate: number; capacity: number; minScore: number; halfLifeMs: number },
    private readonly now: () => number = Date.now,
  ) {
    this.every = Math.max(1, Math.round(1 / opts.sampleRate))
  }

  configure(opts: { sampleRate: number; capacity: number; minScore: number; halfLifeMs: number }): void {
    this.opts = opts
    this.every = Math.max(1, Math.round(1 / opts.sampleRate))
    while (this.scores.size > opts.capacity) this.evictMin()
  }

  /** Counts one request of a key (only every Nth request is looked at). */
  record(key: string): void {
    if (++this.tick < this.every) return
    this.tick = 0
    const now = this.now()
    const s = this.scores.get(key)
    if (s !== undefined) {
      s.score = this.decayed(s, now) + 1
      s.at = now
      return
    }
    let base = 0
    if (this.scores.size >= this.opts.capacity) base = this.evictMin()
    this.scores.set(key, { score: base + 1, at: now })
  }

  isHot(key: string): boolean {
    const s = this.scores.get(key)
    return s !== undefined && this.decayed(s, this.now()) >= this.opts.minScore
  }

  /** The hottest keys, best first. */
  top(n: number): Array<{ key: string; score: number }> {
    const now = this.now()
    return [...this.scores.entries()]
      .map(([key, s]) => ({ key, score: this.decayed(s, now) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, n)
  }

  hotCount(): number {
    const now = this.now()
    let n = 0
    for (const s of this.scores.values()) if (this.decayed(s, now) >= this.opts.minScore) n++
    return n
  }

  get tracked(): number {
    return this.scores.size
  }

  private decayed(s: { score: number; at: number }, now: number): number {
    return now <= s.at ? s.score : s.score * Math.pow(0.5, (now - s.at) / this.opts.halfLifeMs)
  }

  private evictMin(): number {
    const now = this.now()
    let minKey: string | undefined
    let min = Infinity
    for (const [k, s] of this.scores) {
      const d = this.decayed(s, now)
      if (d < min) {
        min = d
        minKey = k
      }
    }
    if (minKey !== undefined) this.scores.delete(minKey)
    return min === Infinity ? 0 : min
  }
}
