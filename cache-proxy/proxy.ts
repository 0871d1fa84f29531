// The cache proxy itself: the listening server, the pools of upstream connections (one per client
// identity: protocol, db, AUTH), the tracking connection that keeps the local cache honest, the
// liveness check, and the numbers behind CACHE.STATS and the metrics. Sessions see it through the
// narrow SessionHost interface.
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { newStats, type CacheStats } from './cache.js'
import type { PinLease, ProxyCommandContext, SessionHost } from './host.js'
import { Liveness } from './liveness.js'
import type { Policy } from './policy.js'
import { Pool, type PoolHost } from './pool.js'
import { ReadCache } from './read-cache.js'
import { encodeCommand, reply, ReplyError } from './resp.js'
import { Session } from './session.js'
import { Tags } from './tags.js'
import { Tracker } from './tracker.js'
import { UpstreamConnection, WriteBatch, type Identity } from './upstream.js'

export { TAG_SCRIPT } from './tags.js'

export interface CacheProxyDeps {
  log: Logger
  policy: () => Policy
}

export class CacheProxy implements SessionHost, PoolHost {
  readonly stats: CacheStats = newStats()
  readonly reads: ReadCache
  readonly batch = new WriteBatch()
  readonly tracker: Tracker
  readonly upstream: { host: string; port: number }
  readonly defaultPool: Pool
  readonly log: Logger
  readonly policy: () => Policy
  readonly markerToken = randomBytes(8).toString('hex')
  private readonly tags: Tags
  private readonly liveness: Liveness
  private pinnedCount = 0
  private requestBytes = 0
  private closing = false
  private readonly pools = new Map<string, Pool>()
  private readonly sessions = new Set<Session>()
  private readonly server: Server
  private housekeeping: NodeJS.Timeout | undefined
  private ticks = 0
  private clientCount = 0

  constructor(config: Config, deps: CacheProxyDeps) {
    this.log = deps.log
    this.policy = deps.policy
    const url = new URL(config.redisUrl)
    this.upstream = { host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(url.port || 6379) }
    const user = url.username ? decodeURIComponent(url.username) : undefined
    const pass = url.password ? decodeURIComponent(url.password) : undefined
    const auth = pass === undefined ? undefined : user === undefined ? [pass] : [user, pass]
    const db = Number(url.pathname.slice(1) || 0)
    const identity: Identity = Object.freeze({ proto: 2, db, auth })
    const upstream = this.policy().source.upstream
    this.tracker = new Tracker(
      { host: this.upstream.host, port: this.upstream.port, connectTimeoutMs: upstream.connectTimeoutMs, log: this.log, batch: this.batch, auth },
      {
        onReady: (id, epoch) => {
          this.log.info({ trackingClientId: id }, 'redis client tracking established')
          for (const pool of this.pools.values()) for (const c of pool.conns) if (c.state === 'ready') this.enableTracking(pool, c, id, epoch)
        },
        onLost: () => {
          if (!this.closing) this.log.warn('redis tracking connection lost; local cache flushed')
          this.reads.flush()
        },
        onKeys: (keys) => {
          if (keys === null) return this.reads.flush()
          for (const k of keys) this.reads.invalidate(k.toString('latin1'))
        },
      },
    )
    this.reads = new ReadCache(config.cacheMaxBytes, this.stats, this.policy, this.tracker)
    this.tags = new Tags(this.policy, this.reads, this.stats, this.log)
    this.defaultPool = new Pool(identity, upstream.connections, this, true)
    this.pools.set(poolKey(identity), this.defaultPool)
    this.liveness = new Liveness({
      host: this.upstream.host,
      port: this.upstream.port,
      auth,
      connectTimeoutMs: upstream.connectTimeoutMs,
      log: this.log,
      batch: this.batch,
      timeoutMs: () => this.policy().source.upstream.replyTimeoutMs,
      connections: () => this.sharedConnections(),
      onHung: (why) => {
        this.stats.redisHung++
        for (const pool of this.pools.values()) pool.dropAll(why)
        this.tracker.conn.drop(why)
      },
    })
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket))
  }

  /** Connects upstream (without waiting: a Redis that is down is retried) and listens. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    this.tracker.start()
    this.defaultPool.start()
    this.defaultPool.wantSpares()
    this.liveness.start()
    const every = Math.max(25, Math.min(250, Math.floor(this.policy().source.upstream.replyTimeoutMs / 4)))
    this.housekeeping = setInterval(() => this.tick(), every)
    this.housekeeping.unref()
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
    clearInterval(this.housekeeping)
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    for (const s of [...this.sessions]) s.destroy()
    for (const p of this.pools.values()) p.close()
    this.tracker.close()
    this.liveness.close()
    await closed
  }

  applyPolicy(policy: Policy): void {
    this.reads.applyPolicy(policy)
  }

  private tick(): void {
    const now = Date.now()
    this.liveness.check(now)
    if (++this.ticks % 16 === 0) for (const pool of this.pools.values()) pool.sweep(now)
  }

  private *sharedConnections(): Iterable<UpstreamConnection> {
    for (const pool of this.pools.values()) yield* pool.conns
    yield this.tracker.conn
  }

  private accept(socket: Socket): void {
    const limits = this.policy().source.limits
    if (this.closing || this.sessions.size >= limits.maxClients) {
      socket.on('error', () => undefined)
      socket.end('-ERR max number of clients reached\r\n', () => socket.destroy())
      return
    }
    this.sessions.add(new Session(this, socket, this.clientCount++))
  }

  sessionClosed(s: object): void {
    this.sessions.delete(s as Session)
  }

  get clients(): number {
    return this.sessions.size
  }

  get pinnedClients(): number {
    return this.pinnedCount
  }

  acquirePin(): PinLease | undefined {
    if (this.pinnedCount >= this.policy().source.limits.maxPinnedClients) return undefined
    this.pinnedCount++
    let held = true
    return {
      release: () => {
        if (!held) return
        held = false
        this.pinnedCount--
      },
    }
  }

  holdRequestBytes(delta: number): number {
    this.requestBytes += delta
    return this.requestBytes
  }

  /** The pool of an identity, opened on first use; an error reply when Redis refuses it. */
  async pool(id: Identity): Promise<Pool | Buffer> {
    const key = poolKey(id)
    let pool = this.pools.get(key)
    if (pool === undefined) {
      if (this.pools.size >= this.policy().source.limits.maxUpstreamIdentities) {
        return reply.error('ERR too many distinct client identities (flowgate cache proxy limit)')
      }
      // Other users' pools are a side road: one connection each.
      const d = this.defaultPool.identity
      const sameUser = JSON.stringify(id.auth) === JSON.stringify(d.auth)
      pool = new Pool(id, sameUser ? this.policy().source.upstream.connections : 1, this, sameUser)
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

  connectionReady(conn: UpstreamConnection, pool: Pool): void {
    if (this.tracker.ready) this.enableTracking(pool, conn, this.tracker.id, this.tracker.epoch)
  }

  connectionLost(conn: UpstreamConnection, wasReady: boolean): void {
    if (wasReady) this.reads.connectionLost(conn)
  }

  private enableTracking(pool: Pool, conn: UpstreamConnection, id: number, epoch: number): void {
    if (pool.trackingRefused) return
    const ignore = { reply: () => undefined, fail: () => undefined }
    conn.send(encodeCommand(['CLIENT', 'TRACKING', 'OFF']), ignore)
    conn.send(encodeCommand(['CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id)]), {
      reply: (b, s) => {
        if (b[s] === 43) {
          if (this.tracker.epoch === epoch) conn.trackedEpoch = epoch
          return
        }
        if (pool.trackingRefused) return
        pool.trackingRefused = true
        this.log.warn({ reply: b.toString('latin1', s, Math.min(b.length, s + 200)).trim() }, 'CLIENT TRACKING refused for a client identity; its reads are not cached')
      },
      fail: () => undefined,
    })
  }

  tagWrite(pool: Pool, key: string): void {
    this.tags.tagWrite(pool, key)
  }

  cacheCommand(name: string, args: Buffer[], ctx: ProxyCommandContext): Buffer | Promise<Buffer> {
    const arity = () => reply.error(`ERR wrong number of arguments for '${name.toLowerCase()}' command`)
    switch (name) {
      case 'CACHE.STATS':
        return reply.map(this.statsPairs(), ctx.proto)
      case 'CACHE.FLUSH':
        this.reads.flush()
        return reply.ok
      case 'CACHE.HOTKEYS': {
        const n = args.length > 1 ? Number(args[1]!.toString('latin1')) : 10
        if (!(Number.isInteger(n) && n > 0)) return reply.error('ERR value is not an integer or out of range')
        const top = this.reads.hot.top(Math.min(n, 1000))
        return reply.array(top.map((t) => reply.array([reply.bulk(t.key, 2), reply.bulk(t.score.toFixed(2), 2)])))
      }
      case 'CACHE.TAG': {
        if (args.length < 3) return arity()
        const conn = ctx.pool.pick(ctx.hint)
        if (conn === undefined) return ctx.pool.lastError()
        return this.tags.tag(conn, args[1]!.toString(), args.slice(2)).then(reply.integer, errorReply)
      }
      case 'CACHE.INVALIDATE': {
        if (args.length < 2) return arity()
        const conn = ctx.pool.pick(ctx.hint)
        if (conn === undefined) return ctx.pool.lastError()
        return this.tags.invalidate(conn, args.slice(1).map((a) => a.toString())).then(reply.integer, errorReply)
      }
    }
    return reply.error(`ERR unknown command '${name}'`)
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
      ['tag_errors', s.tagErrors],
      ['waiter_timeouts', s.waiterTimeouts],
      ['upstream_errors', s.upstreamErrors],
      ['redis_hung', s.redisHung],
      ['protocol_errors', s.protocolErrors],
      ['refused_commands', s.refusedCommands],
      ['output_limit_disconnects', s.outputLimitDisconnects],
      ['request_limit_disconnects', s.requestLimitDisconnects],
      ['entries', this.reads.cache.size],
      ['bytes', this.reads.cache.bytes],
      ['hot_keys', this.reads.hot.hotCount()],
      ['clients', this.sessions.size],
      ['pinned_clients', this.pinnedCount],
      ['request_bytes', this.requestBytes],
      ['shared_connections', [...this.pools.values()].reduce((n, p) => n + p.conns.length, 0)],
      ['tracking', this.tracker.ready ? 1 : 0],
    ]
  }
}

/** Builds the proxy (nothing connects or listens until `listen()`). */
export function createCacheProxy(config: Config, deps: CacheProxyDeps): CacheProxy {
  return new CacheProxy(config, deps)
}

function errorReply(err: Error): Buffer {
  const m = err.message
  return reply.error(err instanceof ReplyError && /^[A-Z]+ /.test(m) ? m : `ERR ${m}`)
}

function poolKey(id: Identity): string {
  const auth = id.auth === undefined ? '' : createHash('sha256').update(JSON.stringify(id.auth)).digest('hex')
  return `${id.proto}|${id.db}|${auth}`
}
