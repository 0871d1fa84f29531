// What a client waits for: a Slot holds one reply's place in the client's output order; a Fill is
// one upstream read shared by every concurrent miss of a cache key (singleflight), stored in the
// cache when it arrives unless one of its keys was invalidated meanwhile.
import type { Invalidatable } from './cache.js'
import { reply } from './resp.js'
import type { Pending, UpstreamConnection } from './upstream.js'
import type { CacheProxy, Pool } from './proxy.js'
import type { Session } from './session.js'

const TIMEOUT = reply.error('ERR timed out waiting for redis (flowgate cache proxy)')

/** A reply position in a client's output order. */
export class Slot implements Pending {
  data: Buffer | null = null
  constructor(readonly session: Session) {}
  reply(buf: Buffer, start: number, end: number): void {
    this.session.resolve(this, buf.subarray(start, end))
  }
  fail(error: Buffer): void {
    this.session.core.stats.upstreamErrors++
    this.session.resolve(this, error)
  }
}

/** A forwarded write: drops the keys it touched again when its reply arrives (read-your-writes). */
export class WriteSlot extends Slot {
  constructor(
    session: Session,
    private readonly keys: string | string[] | null,
    private readonly pool: Pool,
  ) {
    super(session)
  }
  override reply(buf: Buffer, start: number, end: number): void {
    const core = this.session.core
    if (this.keys === null) core.cache.flush()
    else if (typeof this.keys === 'string') {
      core.cache.invalidate(this.keys)
      if (buf[start] !== 45) core.tagWrite(this.pool, this.keys)
    } else for (const k of this.keys) core.cache.invalidate(k)
    super.reply(buf, start, end)
  }
}

/** One upstream read shared by every concurrent miss of the same cache key (singleflight). */
export class Fill implements Pending, Invalidatable {
  stale = false
  private readonly waiters: Slot[] = []
  private readonly deadlines: number[] = []
  private expired = 0
  private timer: NodeJS.Timeout | undefined
  readonly epoch: number

  constructor(
    private readonly core: CacheProxy,
    readonly cacheKey: string,
    readonly redisKeys: readonly string[],
    private readonly ttlMs: number,
    private readonly conn: UpstreamConnection,
    private readonly frame: Buffer,
    private readonly pool: Pool,
  ) {
    this.epoch = core.tracker.epoch
    core.inflight.set(cacheKey, this)
    core.cache.track(this, redisKeys)
  }

  /** Adds a waiter; it gets an error of its own if the reply takes longer than its deadline. */
  wait(slot: Slot): void {
    const timeoutMs = this.core.policy().source.singleflight.waitTimeoutMs
    this.waiters.push(slot)
    this.deadlines.push(Date.now() + timeoutMs)
    if (this.timer === undefined) this.timer = setTimeout(this.expire, timeoutMs)
  }

  private readonly expire = () => {
    const now = Date.now()
    while (this.expired < this.waiters.length && this.deadlines[this.expired]! <= now) {
      const w = this.waiters[this.expired++]!
      this.core.stats.waiterTimeouts++
      w.session.resolve(w, TIMEOUT)
    }
    this.timer = this.expired < this.waiters.length ? setTimeout(this.expire, Math.max(1, this.deadlines[this.expired]! - now)) : undefined
  }

  private finish(): void {
    clearTimeout(this.timer)
    if (this.core.inflight.get(this.cacheKey) === this) this.core.inflight.delete(this.cacheKey)
    this.core.cache.untrack(this, this.redisKeys)
  }

  reply(buf: Buffer, start: number, end: number): void {
    this.finish()
    const value = Buffer.from(buf.subarray(start, end))
    const isError = buf[start] === 45 || buf[start] === 33
    if (!isError) {
      if (!this.stale && this.core.canStore(this.conn, this.epoch)) {
        const policy = this.core.policy()
        const hot = policy.source.hotKeys.enabled && this.core.hot.isHot(this.redisKeys[0]!)
        const ttl = Math.min(hot ? this.ttlMs * policy.source.hotKeys.ttlMultiplier : this.ttlMs, policy.maxTtlMs)
        const now = Date.now()
        if (value.length <= policy.source.maxEntryBytes) {
          const refresh = { frame: this.frame, pool: this.pool, ttlMs: this.ttlMs }
          if (this.core.cache.set(this.cacheKey, value, this.redisKeys, now + ttl, now + ttl * policy.source.hotKeys.refreshAheadRatio, refresh))
            this.core.stats.fills++
        }
      } else this.core.stats.fillsDiscarded++
    }
    for (let i = this.expired; i < this.waiters.length; i++) this.waiters[i]!.session.resolve(this.waiters[i]!, value)
  }

  fail(error: Buffer): void {
    this.finish()
    this.core.stats.upstreamErrors++
    for (let i = this.expired; i < this.waiters.length; i++) this.waiters[i]!.session.resolve(this.waiters[i]!, error)
  }
}

export interface RefreshInfo {
  frame: Buffer
  pool: Pool
  ttlMs: number
}
