// The cache proxy itself: the listening server, the shared upstream pools (one per client identity:
// protocol, db, user), the tracking connection that keeps the local cache honest, tags, refreshes
// of hot keys, and the numbers behind CACHE.STATS and the metrics.
import { createHash } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { HotKeys, LocalCache, newStats, type CacheStats } from './cache.js'
import type { Policy } from './policy.js'
import { encodeCommand, reply, ReplyError } from './resp.js'
import { Fill, type RefreshInfo } from './fill.js'
import { Session } from './session.js'
import { identityInit, Tracker, UpstreamConnection, WriteBatch, type Identity } from './upstream.js'

/** Deletes a batch of a tag's keys and removes them from the tag set, atomically. KEYS[1] is the tag set. */
export const TAG_SCRIPT = `local n = 0
for i = 2, #KEYS do n = n + redis.call('DEL', KEYS[i]) end
if #KEYS > 1 then redis.call('SREM', KEYS[1], unpack(KEYS, 2)) end
return n`
const TAG_SCRIPT_SHA = createHash('sha1').update(TAG_SCRIPT).digest('hex')
/** Names the proxy's own connections in CLIENT LIST. */
const SETNAME_SHARED = encodeCommand(['CLIENT', 'SETNAME', 'flowgate-cache-proxy'])

export interface CacheProxyDeps {
  log: Logger
  policy: () => Policy
}

/** A few shared connections speaking for one identity. */
export class Pool {
  readonly conns: UpstreamConnection[] = []
  everReady = false
  private settled = false
  readonly ready: Promise<Buffer | null>
  private resolveReady!: (v: Buffer | null) => void
  private lastErr: Buffer = reply.error('ERR upstream unavailable (flowgate cache proxy): connecting')

  constructor(
    readonly identity: Identity,
    size: number,
    proxy: CacheProxy,
  ) {
    this.ready = new Promise((resolve) => (this.resolveReady = resolve))
    for (let i = 0; i < size; i++) {
      this.conns.push(
        new UpstreamConnection({
          host: proxy.upstream.host,
          port: proxy.upstream.port,
          proto: identity.proto,
          connectTimeoutMs: proxy.policy().source.upstream.connectTimeoutMs,
          replyTimeoutMs: proxy.policy().source.upstream.replyTimeoutMs,
          log: proxy.log,
          batch: proxy.batch,
          reconnect: true,
          init: () => [...identityInit(identity), SETNAME_SHARED],
          onReady: (conn) => {
            this.everReady = true
            this.settle(null)
            proxy.connectionReady(conn)
          },
          onDown: (_conn, error, wasReady) => {
            this.lastErr = error
            this.settle(error)
            proxy.connectionLost(wasReady)
          },
        }),
      )
    }
  }

  private settle(v: Buffer | null): void {
    if (this.settled) return
    this.settled = true
    this.resolveReady(v)
  }

  start(): void {
    for (const c of this.conns) c.connect()
  }

  /** The connection for client number `i`, or another usable one, or undefined when all are down. */
  pick(i: number): UpstreamConnection | undefined {
    const n = this.conns.length
    const c = this.conns[i % n]!
    if (c.usable) return c
    for (const o of this.conns) if (o.usable) return o
    return undefined
  }

  lastError(): Buffer {
    return this.lastErr
  }

  close(): void {
    for (const c of this.conns) c.close()
  }
}

export class CacheProxy {
  readonly stats: CacheStats = newStats()
  readonly cache: LocalCache
  readonly hot: HotKeys
  readonly batch = new WriteBatch()
  readonly inflight = new Map<string, Fill>()
  readonly tracker: Tracker
  readonly upstream: { host: string; port: number }
  readonly defaultIdentity: Identity
  readonly defaultPool: Pool
  readonly log: Logger
  readonly policy: () => Policy
  readonly cacheEnabled: boolean
  pinnedCount = 0
  private closing = false
  private readonly pools = new Map<string, Pool>()
  private readonly sessions = new Set<Session>()
  private readonly server: Server
  private clientCount = 0

  constructor(config: Config, deps: CacheProxyDeps) {
    this.log = deps.log
    this.policy = deps.policy
    const url = new URL(config.redisUrl)
    this.upstream = { host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(url.port || 6379) }
    const user = url.username ? decodeURIComponent(url.username) : undefined
    const pass = url.password ? decodeURIComponent(url.password) : undefined
    const db = Number(url.pathname.slice(1) || 0)
    this.defaultIdentity = Object.freeze({ proto: 2, db, user, pass })
    this.cacheEnabled = config.cacheMaxBytes > 0
    this.cache = new LocalCache(config.cacheMaxBytes, this.stats)
    const hk = this.policy().source.hotKeys
    this.hot = new HotKeys({ sampleRate: hk.sampleRate, capacity: hk.capacity, minScore: hk.minScore, halfLifeMs: hk.halfLifeSec * 1000 })
    this.tracker = new Tracker(
      { host: this.upstream.host, port: this.upstream.port, connectTimeoutMs: this.policy().source.upstream.connectTimeoutMs, log: this.log, batch: this.batch, user, pass },
      {
        onReady: (id, epoch) => {
          this.log.info({ trackingClientId: id }, 'redis client tracking established')
          for (const pool of this.pools.values()) for (const c of pool.conns) if (c.state === 'ready') this.enableTracking(c, id, epoch)
        },
        onLost: () => {
          if (!this.closing) this.log.warn('redis tracking connection lost; local cache flushed')
          this.cache.flush()
        },
        onKeys: (keys) => {
          if (keys === null) return this.cache.flush()
          for (const k of keys) this.cache.invalidate(k.toString('latin1'))
        },
      },
    )
    this.defaultPool = new Pool(this.defaultIdentity, this.policy().source.upstream.connections, this)
    this.pools.set(poolKey(this.defaultIdentity), this.defaultPool)
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket))
  }

  /** Connects upstream (without waiting: a Redis that is down is retried) and listens. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    this.tracker.start()
    this.defaultPool.start()
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const addr = this.server.address() as { address: string; port: number }
    return { host: addr.address, port: addr.port }
  }

  async close(): Promise<void> {
    this.closing = true
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const s of this.sessions) s.socket.destroy()
    for (const p of this.pools.values()) p.close()
    this.tracker.close()
    await closed
  }

  applyPolicy(policy: Policy): void {
    const hk = policy.source.hotKeys
    this.hot.configure({ sampleRate: hk.sampleRate, capacity: hk.capacity, minScore: hk.minScore, halfLifeMs: hk.halfLifeSec * 1000 })
    // Entries were stored under the old rules and TTLs.
    this.cache.flush()
  }

  private accept(socket: Socket): void {
    const limits = this.policy().source.limits
    if (this.sessions.size >= limits.maxClients) {
      socket.end('-ERR max number of clients reached\r\n')
      socket.on('error', () => undefined)
      return
    }
    this.sessions.add(new Session(this, socket, this.clientCount++))
  }

  sessionClosed(s: Session): void {
    this.sessions.delete(s)
  }

  get clients(): number {
    return this.sessions.size
  }

  /** The pool of an identity, opened on first use; an error reply when Redis refuses it. */
  async getPool(id: Identity): Promise<Pool | Buffer> {
    const key = poolKey(id)
    let pool = this.pools.get(key)
    if (pool === undefined) {
      if (this.pools.size >= this.policy().source.limits.maxUpstreamIdentities) {
        return reply.error('ERR too many distinct client identities (flowgate cache proxy limit)')
      }
      // Other users' pools are a side road: one connection each.
      const sameUser = id.user === this.defaultIdentity.user && id.pass === this.defaultIdentity.pass
      pool = new Pool(id, sameUser ? this.policy().source.upstream.connections : 1, this)
      this.pools.set(key, pool)
      pool.start()
    }
    if (pool.everReady || pool === this.defaultPool) return pool
    const err = await pool.ready
    if (err !== null && !pool.everReady) {
      if (this.pools.get(key) === pool) this.pools.delete(key)
      pool.close()
      return err
    }
    return pool
  }

  connectionReady(conn: UpstreamConnection): void {
    if (this.tracker.ready) this.enableTracking(conn, this.tracker.id, this.tracker.epoch)
  }

  connectionLost(wasReady: boolean): void {
    // Redis forgets what a connection read when it closes, so invalidations for it would not come.
    if (wasReady) this.cache.flush()
  }

  private enableTracking(conn: UpstreamConnection, id: number, epoch: number): void {
    const ignore = { reply: () => undefined, fail: () => undefined }
    conn.send(encodeCommand(['CLIENT', 'TRACKING', 'OFF']), ignore)
    conn.send(encodeCommand(['CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id)]), {
      reply: (b, s) => {
        if (b[s] === 43 && this.tracker.epoch === epoch) conn.trackedEpoch = epoch
        else if (b[s] !== 43) this.log.error({ reply: b.toString('latin1', s, Math.min(b.length, s + 200)) }, 'CLIENT TRACKING refused; caching stays off')
      },
      fail: () => undefined,
    })
  }

  /** True when a reply read on `conn` under tracking epoch `epoch` may be stored. */
  canStore(conn: UpstreamConnection, epoch: number): boolean {
    const t = this.tracker
    return t.ready && epoch === t.epoch && conn.trackedEpoch === epoch
  }

  /** Re-reads a hot entry before it expires (no client waits for it). */
  refresh(cacheKey: string, redisKeys: readonly string[], info: RefreshInfo): void {
    if (this.inflight.has(cacheKey)) return
    const conn = info.pool.pick(0)
    if (conn === undefined) return
    this.stats.refreshes++
    conn.send(info.frame, new Fill(this, cacheKey, redisKeys, info.ttlMs, conn, info.frame, info.pool))
  }

  /** Adds a key written through the proxy to the tags the policy gives its pattern. */
  tagWrite(pool: Pool, key: string): void {
    const policy = this.policy()
    if (policy.tagRules.length === 0) return
    for (const rule of policy.tagRules) {
      if (!rule.match(key)) continue
      const conn = pool.pick(0)
      if (conn === undefined) return
      for (const tag of rule.tags) conn.send(encodeCommand(['SADD', policy.source.tags.prefix + tag, Buffer.from(key, 'latin1')]), { reply: () => undefined, fail: () => undefined })
    }
  }

  /** Deletes every key of the tags in Redis (one script per batch) and drops them locally; returns keys deleted. */
  async invalidateTags(conn: UpstreamConnection, tags: string[]): Promise<number> {
    const { prefix, batchSize } = this.policy().source.tags
    let total = 0
    for (const tag of tags) {
      const set = prefix + tag
      for (let round = 0; round < 1_000_000; round++) {
        const members = await conn.call(['SRANDMEMBER', set, batchSize])
        if (!Array.isArray(members) || members.length === 0) break
        const keys = members.filter((m): m is Buffer => Buffer.isBuffer(m))
        const args = [String(keys.length + 1), set, ...keys]
        let n
        try {
          n = await conn.call(['EVALSHA', TAG_SCRIPT_SHA, ...args])
        } catch (err) {
          if (!(err instanceof ReplyError) || !err.message.startsWith('NOSCRIPT')) throw err
          n = await conn.call(['EVAL', TAG_SCRIPT, ...args])
        }
        total += Number(n)
        for (const k of keys) this.cache.invalidate(k.toString('latin1'))
      }
      this.stats.tagInvalidations++
    }
    return total
  }

  statsPairs(): Array<[string, number | string]> {
    const s = this.stats
    return [
      ['hits', s.hits],
      ['misses', s.misses],
      ['coalesced', s.coalesced],
      ['fills', s.fills],
      ['fills_discarded', s.fillsDiscarded],
      ['evictions', s.evictions],
      ['expirations', s.expirations],
      ['invalidations', s.invalidations],
      ['invalidated_entries', s.invalidatedEntries],
      ['flushes', s.flushes],
      ['refreshes', s.refreshes],
      ['tag_invalidations', s.tagInvalidations],
      ['waiter_timeouts', s.waiterTimeouts],
      ['upstream_errors', s.upstreamErrors],
      ['protocol_errors', s.protocolErrors],
      ['output_limit_disconnects', s.outputLimitDisconnects],
      ['entries', this.cache.size],
      ['bytes', this.cache.bytes],
      ['hot_keys', this.hot.hotCount()],
      ['clients', this.sessions.size],
      ['pinned_clients', this.pinnedCount],
      ['tracking', this.tracker.ready ? 1 : 0],
    ]
  }
}

/** Builds the proxy (nothing connects or listens until `listen()`). */
export function createCacheProxy(config: Config, deps: CacheProxyDeps): CacheProxy {
  return new CacheProxy(config, deps)
}

function poolKey(id: Identity): string {
  const pass = id.pass === undefined ? '' : createHash('sha256').update(id.pass).digest('hex')
  return `${id.proto}|${id.db}|${id.user ?? ''}|${pass}`
}

