// The connections that speak for one client identity (protocol, db, AUTH): a few shared
// connections that grow when every one of them is held up, and a few spare dedicated connections
// ready for clients that need one of their own.
import type { Logger } from '../lib/logger.js'
import type { Policy } from './policy.js'
import { Dedicated } from './pinned.js'
import { encodeCommand, reply } from './resp.js'
import { identityInit, UpstreamConnection, type Identity, type InitFrame, type WriteBatch } from './upstream.js'

/** Names the proxy's shared connections in CLIENT LIST (best effort: an ACL may forbid it). */
const SETNAME_SHARED: InitFrame = { frame: encodeCommand(['CLIENT', 'SETNAME', 'flowgate-cache-proxy']), optional: true }
/** An extra shared connection idle this long is closed. */
const EXTRA_IDLE_MS = 30_000

/** What a pool needs from the proxy. */
export interface PoolHost {
  readonly upstream: { host: string; port: number }
  readonly log: Logger
  readonly batch: WriteBatch
  /** Proves a dedicated connection's replies against injected commands (see pinned.ts). */
  readonly markerToken: string
  policy(): Policy
  connectionReady(conn: UpstreamConnection, pool: Pool): void
  connectionLost(conn: UpstreamConnection, wasReady: boolean): void
}

export class Pool {
  readonly conns: UpstreamConnection[] = []
  everReady = false
  /** Redis refused CLIENT TRACKING to this identity (its ACL): its reads are not cached, and it is not asked again. */
  trackingRefused = false
  readonly ready: Promise<Buffer | null>
  private settled = false
  private resolveReady!: (v: Buffer | null) => void
  private lastErr: Buffer = reply.error('ERR upstream unavailable (flowgate cache proxy): connecting')
  private readonly spares: Dedicated[] = []
  private opening = 0
  private spareRetry: NodeJS.Timeout | undefined
  private spareBackoffMs = 50
  private wantsSpares = false
  private closed = false

  constructor(
    readonly identity: Identity,
    private readonly base: number,
    private readonly host: PoolHost,
    /** The proxy's own identity (REDIS_URL): its connections name themselves. */
    private readonly named: boolean,
  ) {
    this.ready = new Promise((resolve) => (this.resolveReady = resolve))
    for (let i = 0; i < base; i++) this.conns.push(this.newConnection())
  }

  private newConnection(): UpstreamConnection {
    const host = this.host
    const upstream = host.policy().source.upstream
    const init = [...identityInit(this.identity), ...(this.named ? [SETNAME_SHARED] : [])]
    return new UpstreamConnection({
      host: host.upstream.host,
      port: host.upstream.port,
      proto: this.identity.proto,
      connectTimeoutMs: upstream.connectTimeoutMs,
      log: host.log,
      batch: host.batch,
      reconnect: true,
      init: () => init,
      onReady: (conn) => {
        this.everReady = true
        this.settle(null)
        host.connectionReady(conn, this)
      },
      onDown: (conn, error, wasReady) => {
        this.lastErr = error
        this.settle(error)
        host.connectionLost(conn, wasReady)
      },
    })
  }

  private settle(v: Buffer | null): void {
    if (this.settled) return
    this.settled = true
    this.resolveReady(v)
  }

  start(): void {
    for (const c of this.conns) c.connect()
  }

  /**
   * A shared connection for a client with nothing outstanding: `prefer` (its last one) while it
   * is not held up, else one that is not, else a new one while under upstream.maxConnections.
   * Undefined when every connection is down.
   */
  pick(hint: number, prefer?: UpstreamConnection): UpstreamConnection | undefined {
    const now = Date.now()
    const { stallMs, maxConnections } = this.host.policy().source.upstream
    if (prefer !== undefined && prefer.usable && prefer.stalledFor(now) < stallMs) return prefer
    const conns = this.conns
    const n = conns.length
    let fallback: UpstreamConnection | undefined
    for (let k = 0; k < n; k++) {
      const c = conns[(hint + k) % n]!
      if (!c.usable) continue
      if (c.stalledFor(now) < stallMs) return c
      if (fallback === undefined || c.stalledFor(now) < fallback.stalledFor(now)) fallback = c
    }
    if (fallback === undefined) return undefined
    if (n >= maxConnections) return fallback
    const c = this.newConnection()
    conns.push(c)
    c.connect()
    this.host.log.info({ connections: conns.length, stalledMs: fallback.stalledFor(now) }, 'every shared redis connection is held up; opened another')
    return c
  }

  lastError(): Buffer {
    return this.lastErr
  }

  /** Closes extra connections idle for a while (the first `base` stay). */
  sweep(now: number): void {
    for (let i = this.conns.length - 1; i >= this.base; i--) {
      const c = this.conns[i]!
      if (c.pending === 0 && now - c.lastUsed > EXTRA_IDLE_MS) {
        this.conns.splice(i, 1)
        c.close()
      }
    }
  }

  /** Drops every shared connection (Redis is hung); they reconnect. */
  dropAll(why: Buffer): void {
    for (const c of this.conns) c.drop(why)
  }

  /**
   * A dedicated connection set up for this identity: a ready spare at once, else a new one whose
   * setup the caller waits for (`ready`, or `failed` with Redis's refusal).
   */
  dedicated(): Dedicated {
    this.wantsSpares = true
    const spare = this.spares.shift()
    this.fillSpares()
    return spare ?? this.openDedicated()
  }

  private openDedicated(): Dedicated {
    const upstream = this.host.policy().source.upstream
    return new Dedicated({
      host: this.host.upstream.host,
      port: this.host.upstream.port,
      init: identityInit(this.identity),
      connectTimeoutMs: upstream.connectTimeoutMs,
      setupTimeoutMs: upstream.connectTimeoutMs + upstream.replyTimeoutMs,
      markerToken: this.host.markerToken,
    })
  }

  /** Keeps upstream.spareConnections ready dedicated connections (once this identity has used one). */
  fillSpares(): void {
    if (!this.wantsSpares || this.closed || this.spareRetry !== undefined) return
    const want = this.host.policy().source.upstream.spareConnections
    while (this.spares.length + this.opening < want) {
      const d = this.openDedicated()
      this.opening++
      d.whenSetUp((error) => {
        this.opening--
        if (this.closed) return d.close()
        if (error !== null) {
          // Redis down or refusing: try again later, not in a loop.
          d.close()
          this.spareRetry = setTimeout(() => {
            this.spareRetry = undefined
            this.fillSpares()
          }, this.spareBackoffMs)
          this.spareBackoffMs = Math.min(this.spareBackoffMs * 2, 5000)
          return
        }
        this.spareBackoffMs = 50
        this.spares.push(d)
        d.onIdleClose(() => {
          const i = this.spares.indexOf(d)
          if (i >= 0) this.spares.splice(i, 1)
          this.fillSpares()
        })
      })
    }
  }

  /** Starts keeping spares at once (the proxy's own identity, which most clients use). */
  wantSpares(): void {
    this.wantsSpares = true
    this.fillSpares()
  }

  close(): void {
    this.closed = true
    clearTimeout(this.spareRetry)
    for (const c of this.conns) c.close()
    for (const d of this.spares.splice(0)) d.close()
  }
}
