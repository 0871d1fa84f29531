// What a client waits for: a Slot holds one reply's place in the client's output order; a Fill is
// one upstream read shared by every concurrent miss of a cache key (singleflight), stored in the
// cache when it arrives unless one of its keys was invalidated meanwhile, and never for longer
// than the keys it read live in Redis.
import type { Invalidatable } from './cache.js'
import { reply } from './resp.js'
import type { Pending, UpstreamConnection } from './upstream.js'
import type { Pool } from './pool.js'
import type { ReadCache } from './read-cache.js'

const TIMEOUT = reply.error('ERR timed out waiting for redis (flowgate cache proxy)')

/** The side of a client that slots report to (the Session). */
export interface SlotOwner {
  resolve(slot: Slot, data: Buffer): void
  /** A forwarded command got no reply (Redis unavailable): counted. */
  upstreamFailed(): void
}

/** A reply position in a client's output order. */
export class Slot implements Pending {
  data: Buffer | null = null
  constructor(readonly owner: SlotOwner) {}
  reply(buf: Buffer, start: number, end: number): void {
    this.owner.resolve(this, buf.subarray(start, end))
  }
  fail(error: Buffer): void {
    this.owner.upstreamFailed()
    this.owner.resolve(this, error)
  }
}

/** A forwarded write: drops the keys it touched again when its reply arrives (read-your-writes). */
export class WriteSlot extends Slot {
  constructor(
    owner: SlotOwner,
    private readonly reads: ReadCache,
    private readonly keys: string | string[] | null,
    private readonly pool: Pool,
    private readonly onWritten?: (pool: Pool, key: string) => void,
  ) {
    super(owner)
  }
  override reply(buf: Buffer, start: number, end: number): void {
    if (this.keys === null) this.reads.flush()
    else if (typeof this.keys === 'string') {
      this.reads.invalidate(this.keys)
      if (buf[start] !== 45) this.onWritten?.(this.pool, this.keys)
    } else for (const k of this.keys) this.reads.invalidate(k)
    super.reply(buf, start, end)
  }
}

/** How to read an entry again (hot keys are refreshed before they expire), and where it was read. */
export interface RefreshInfo {
  frame: Buffer
  pool: Pool
  ttlMs: number
  /** The connection it was read on: when it closes, Redis stops tracking what it read. */
  conn: UpstreamConnection
}

/** One upstream read shared by every concurrent miss of the same cache key (singleflight). */
export class Fill implements Pending, Invalidatable {
  stale = false
  private readonly waiters: Slot[] = []
  private readonly deadlines: number[] = []
  private expired = 0
  private timer: NodeJS.Timeout | undefined
  private value: Buffer | null = null
  /** PTTL replies still to come, the earliest key expiry they gave, and whether one failed. */
  private ttlLeft: number
  private keyExpiresAt = Infinity
  private ttlFailed = false
  private done = false
  private readonly epoch: number
  private readonly sentAt = Date.now()

  constructor(
    private readonly reads: ReadCache,
    readonly cacheKey: string,
    readonly redisKeys: readonly string[],
    private readonly ttlMs: number,
    readonly conn: UpstreamConnection,
    private readonly frame: Buffer,
    private readonly pool: Pool,
  ) {
    this.epoch = reads.epoch()
    this.ttlLeft = redisKeys.length
    reads.inflight.set(cacheKey, this)
    reads.cache.track(this, redisKeys)
  }

  /**
   * Sends the read and, right behind it on the same connection, PTTL of each key it reads: a hit
   * never reaches Redis, so Redis never expires the key lazily for it; the entry must not outlive
   * the key. The PTTL runs after the read, so the key's real expiry is no earlier than
   * `sentAt + pttl`.
   */
  send(): void {
    this.conn.send(this.frame, this)
    for (const k of this.redisKeys) this.conn.send(this.reads.pttlFrame(k), this.ttlReply)
  }

  /** Adds a waiter; it gets an error of its own if the reply takes longer than its deadline. */
  wait(slot: Slot): void {
    const timeoutMs = this.reads.policy().source.singleflight.waitTimeoutMs
    this.waiters.push(slot)
    this.deadlines.push(Date.now() + timeoutMs)
    if (this.timer === undefined) this.timer = setTimeout(this.expire, timeoutMs)
  }

  private readonly expire = () => {
    const now = Date.now()
    while (this.expired < this.waiters.length && this.deadlines[this.expired]! <= now) {
      const w = this.waiters[this.expired++]!
      this.reads.stats.waiterTimeouts++
      w.owner.resolve(w, TIMEOUT)
    }
    this.timer = this.expired < this.waiters.length ? setTimeout(this.expire, Math.max(1, this.deadlines[this.expired]! - now)) : undefined
  }

  reply(buf: Buffer, start: number, end: number): void {
    clearTimeout(this.timer)
    // Later misses start a read of their own; this one still waits for its PTTLs to be stored.
    if (this.reads.inflight.get(this.cacheKey) === this) this.reads.inflight.delete(this.cacheKey)
    const value = Buffer.from(buf.subarray(start, end))
    const isError = buf[start] === 45 || buf[start] === 33
    if (!isError) this.value = value
    for (let i = this.expired; i < this.waiters.length; i++) this.waiters[i]!.owner.resolve(this.waiters[i]!, value)
    if (isError) this.finish()
    else if (this.ttlLeft === 0) this.store()
  }

  fail(error: Buffer): void {
    clearTimeout(this.timer)
    if (this.reads.inflight.get(this.cacheKey) === this) this.reads.inflight.delete(this.cacheKey)
    this.reads.stats.upstreamErrors++
    for (let i = this.expired; i < this.waiters.length; i++) this.waiters[i]!.owner.resolve(this.waiters[i]!, error)
    this.finish()
  }

  private readonly ttlReply: Pending = {
    reply: (b, s, e) => {
      if (b[s] !== 58) this.ttlFailed = true
      else {
        const pttl = Number(b.toString('latin1', s + 1, e - 2))
        if (pttl >= 0) this.keyExpiresAt = Math.min(this.keyExpiresAt, this.sentAt + pttl)
      }
      if (--this.ttlLeft === 0 && this.value !== null) this.store()
    },
    fail: () => {
      this.ttlFailed = true
      if (--this.ttlLeft === 0 && this.value !== null) this.store()
    },
  }

  private store(): void {
    const reads = this.reads
    if (this.done) return
    const value = this.value!
    if (this.stale || this.ttlFailed || !reads.canStore(this.conn, this.epoch)) {
      reads.stats.fillsDiscarded++
      return this.finish()
    }
    const policy = reads.policy()
    const hot = policy.source.hotKeys.enabled && reads.hot.isHot(this.redisKeys[0]!)
    const ttl = Math.min(hot ? this.ttlMs * policy.source.hotKeys.ttlMultiplier : this.ttlMs, policy.maxTtlMs)
    const now = Date.now()
    const expiresAt = Math.min(now + ttl, this.keyExpiresAt)
    // A key that expires in Redis is not refreshed ahead: it is meant to go.
    const refreshAt = this.keyExpiresAt === Infinity ? now + ttl * policy.source.hotKeys.refreshAheadRatio : Infinity
    if (expiresAt > now && value.length <= policy.source.maxEntryBytes) {
      const refresh: RefreshInfo = { frame: this.frame, pool: this.pool, ttlMs: this.ttlMs, conn: this.conn }
      if (reads.cache.set(this.cacheKey, value, this.redisKeys, expiresAt, refreshAt, refresh)) reads.stats.fills++
    }
    this.finish()
  }

  private finish(): void {
    this.done = true
    this.reads.cache.untrack(this, this.redisKeys)
  }
}
