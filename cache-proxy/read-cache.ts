// The read side of the proxy: the local cache, the fills in flight (singleflight), hot keys and
// their refresh, and the rule that nothing is stored unless Redis client tracking covers the
// connection it was read on.
import { HotKeys, LocalCache, type CacheStats, type Entry } from './cache.js'
import { keyIndexes, type CommandSpec } from './commands.js'
import { Fill, type RefreshInfo } from './fill.js'
import { ruleFor, type CompiledRule, type Policy } from './policy.js'
import type { RequestParser } from './request.js'
import { encodeCommand } from './resp.js'
import type { UpstreamConnection } from './upstream.js'

/** What the read cache needs to know about tracking. */
export interface TrackingState {
  readonly ready: boolean
  readonly epoch: number
}

/** Reads of more keys than this are not cached: each key costs a PTTL on every fill. */
export const MAX_FILL_KEYS = 64

export class ReadCache {
  readonly cache: LocalCache
  readonly hot: HotKeys
  readonly inflight = new Map<string, Fill>()
  readonly enabled: boolean

  constructor(
    maxBytes: number,
    readonly stats: CacheStats,
    readonly policy: () => Policy,
    private readonly tracking: TrackingState,
  ) {
    this.enabled = maxBytes > 0
    this.cache = new LocalCache(maxBytes, stats)
    const hk = policy().source.hotKeys
    this.hot = new HotKeys({ sampleRate: hk.sampleRate, capacity: hk.capacity, minScore: hk.minScore, halfLifeMs: hk.halfLifeSec * 1000 })
  }

  applyPolicy(policy: Policy): void {
    const hk = policy.source.hotKeys
    this.hot.configure({ sampleRate: hk.sampleRate, capacity: hk.capacity, minScore: hk.minScore, halfLifeMs: hk.halfLifeSec * 1000 })
    // Entries were stored under the old rules and TTLs.
    this.cache.flush()
  }

  /**
   * How a cacheable read is cached: its cache key (the client's scope, the command and all its
   * arguments), the Redis keys it reads and the TTL of the rule; undefined when the policy does not
   * cache it. A multi-key read is cached only when every key matches a rule (the shortest TTL wins).
   */
  plan(p: RequestParser, spec: CommandSpec, scope: string): { cacheKey: string; redisKeys: string[]; ttlMs: number } | undefined {
    if (!this.enabled) return undefined
    const policy = this.policy()
    const firstKey = p.arg(spec.first)
    let rule: CompiledRule | undefined = ruleFor(policy, spec.name, firstKey)
    if (rule === undefined) return undefined
    let redisKeys = [firstKey]
    if (spec.last !== spec.first || spec.numkeysAt !== 0) {
      redisKeys = keyIndexes(spec, p.argc, (i) => p.argInt(i)).map((i) => p.arg(i))
      if (redisKeys.length === 0 || redisKeys.length > MAX_FILL_KEYS) return undefined
      for (const k of redisKeys) {
        const r = ruleFor(policy, spec.name, k)
        if (r === undefined) return undefined
        if (r.ttlMs < rule.ttlMs) rule = r
      }
    }
    let cacheKey = scope + spec.name
    if (p.argc === 2) cacheKey += '\x00' + firstKey
    else for (let i = 1; i < p.argc; i++) cacheKey += '\x01' + p.argLen(i) + ':' + p.arg(i)
    return { cacheKey, redisKeys, ttlMs: rule.ttlMs }
  }

  epoch(): number {
    return this.tracking.epoch
  }

  /** A cached reply, counting the hit, and refreshing a hot entry that nears its end. */
  lookup(cacheKey: string, firstKey: string, now: number): Entry | undefined {
    const hotKeys = this.policy().source.hotKeys
    if (hotKeys.enabled) this.hot.record(firstKey)
    const hit = this.cache.get(cacheKey, now)
    if (hit === undefined) {
      this.stats.misses++
      return undefined
    }
    this.stats.hits++
    if (now >= hit.refreshAt && !hit.refreshing && hotKeys.enabled && this.hot.isHot(firstKey)) {
      hit.refreshing = true
      this.refresh(hit.cacheKey, hit.redisKeys, hit.refresh as RefreshInfo)
    }
    return hit
  }

  /** True when a reply read on `conn` under tracking epoch `epoch` may be stored. */
  canStore(conn: UpstreamConnection, epoch: number): boolean {
    const t = this.tracking
    return t.ready && epoch === t.epoch && conn.trackedEpoch === epoch
  }

  pttlFrame(key: string): Buffer {
    return encodeCommand(['PTTL', key])
  }

  /** Re-reads a hot entry before it expires (no client waits for it). */
  private refresh(cacheKey: string, redisKeys: readonly string[], info: RefreshInfo): void {
    if (this.inflight.has(cacheKey)) return
    const conn = info.pool.pick(0)
    if (conn === undefined) return
    this.stats.refreshes++
    new Fill(this, cacheKey, redisKeys, info.ttlMs, conn, info.frame, info.pool).send()
  }

  invalidate(key: string): void {
    this.cache.invalidate(key)
  }

  flush(): void {
    this.cache.flush()
  }

  /** Redis forgets what a closed connection read, so invalidations for it would not come. */
  connectionLost(conn: UpstreamConnection): void {
    this.cache.dropWhere((r) => (r as RefreshInfo).conn === conn)
    for (const f of this.inflight.values()) if (f.conn === conn) f.stale = true
  }
}
