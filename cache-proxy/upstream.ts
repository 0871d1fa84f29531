// Shared connections to Redis. One pipelines the commands of many clients: writes made in one
// event-loop turn leave in one syscall, and replies are matched to their senders in FIFO order by
// scanning (not decoding) the reply stream. Connections reconnect with backoff; while one is down,
// a command fails at once instead of waiting. A connection never decides by itself that Redis is
// dead because an answer is slow: the proxy's liveness check does (liveness.ts).
import { connect, type Socket } from 'node:net'
import type { Logger } from '../lib/logger.js'
import { InputBuffer, ProtocolError, ReplyError, decodeReply, encodeCommand, reply, scanNeed, scanReply, type ReplyValue } from './resp.js'

/** Whoever waits for one reply. `buf` is reused after the call: copy what must be kept. */
export interface Pending {
  reply(buf: Buffer, start: number, end: number): void
  /** The command got no reply: `error` is a ready RESP error to pass on. */
  fail(error: Buffer): void
}

/** A FIFO without Array#shift's cost on long pipelines. */
export class Queue<T> {
  private items: Array<T | undefined> = []
  private head = 0
  get length(): number {
    return this.items.length - this.head
  }
  push(x: T): void {
    this.items.push(x)
  }
  peek(): T | undefined {
    return this.items[this.head]
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const x = this.items[this.head]
    this.items[this.head++] = undefined
    if (this.head === this.items.length) {
      this.items.length = 0
      this.head = 0
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return x
  }
  drain(): T[] {
    const out = this.items.slice(this.head) as T[]
    this.items = []
    this.head = 0
    return out
  }
}

/** Uncorks, once per batch of replies, every client socket written during the batch. */
export class WriteBatch {
  depth = 0
  readonly corked: Array<{ uncork(): void }> = []
  begin(): void {
    this.depth++
  }
  end(): void {
    if (--this.depth > 0) return
    const list = this.corked
    for (let i = 0; i < list.length; i++) list[i]!.uncork()
    list.length = 0
  }
}

export interface Identity {
  readonly proto: 2 | 3
  readonly db: number
  /**
   * The arguments of the AUTH that authenticated the client (`[password]` or `[user, password]`,
   * latin1), replayed as they were on every connection of this identity; none = Redis's default.
   */
  readonly auth: readonly string[] | undefined
}

/** The commands that give a fresh connection an identity: AUTH, HELLO 3, SELECT. */
export function identityInit(id: Identity): Buffer[] {
  const out: Buffer[] = []
  if (id.auth !== undefined) out.push(encodeCommand(['AUTH', ...id.auth]))
  if (id.proto === 3) out.push(encodeCommand(['HELLO', '3']))
  if (id.db !== 0) out.push(encodeCommand(['SELECT', String(id.db)]))
  return out
}

/** A frame sent first on every (re)connection. */
export interface InitFrame {
  frame: Buffer
  /**
   * An error reply to an optional frame is ignored (e.g. CLIENT SETNAME that an ACL forbids),
   * except NOAUTH: a connection that is not authenticated is of no use.
   */
  optional?: boolean
}

export interface ConnectionOptions {
  host: string
  port: number
  proto: 2 | 3
  connectTimeoutMs: number
  log: Logger
  batch: WriteBatch
  /** Frames sent first on every (re)connection; an error reply to a required one fails the connection. */
  init: () => Array<Buffer | InitFrame>
  onReady?: (conn: UpstreamConnection) => void
  /** The connection failed or dropped; `error` says why (a RESP error from init, or a socket error). */
  onDown?: (conn: UpstreamConnection, error: Buffer, wasReady: boolean) => void
  /** RESP3 push frames (out of band); ignored when absent. */
  onPush?: (buf: Buffer, start: number, end: number) => void
  reconnect: boolean
}

const unavailable = (why: string) => reply.error(`ERR upstream unavailable (flowgate cache proxy): ${why}`)

export class UpstreamConnection {
  state: 'connecting' | 'ready' | 'down' | 'closed' = 'down'
  /** The tracking epoch this connection's reads are tracked under (-1: none). */
  trackedEpoch = -1
  /** Receives replies that arrive with no request waiting (a subscribed connection's messages). */
  sink: Pending | undefined
  private socket: Socket | undefined
  private readonly queue = new Queue<Pending>()
  private input = new InputBuffer()
  private corked = false
  private backoffMs = 50
  private retryTimer: NodeJS.Timeout | undefined
  private lastError: Buffer = unavailable('not connected yet')
  /** When a reply last arrived, or the queue last went from empty to waiting. */
  lastProgress = 0
  /** When Redis last sent anything on this connection. */
  lastReplyAt = 0
  /** When a command was last sent (idle extra connections are closed). */
  lastUsed = Date.now()
  /** The last setup refusal logged, so that a retry loop logs a refusal once, not every second. */
  private loggedRefusal = ''
  private dropped = false
  private closedReady = false

  constructor(private readonly opts: ConnectionOptions) {}

  get pending(): number {
    return this.queue.length
  }

  /** True when a command sent now will be written (possibly after init). */
  get usable(): boolean {
    return this.state === 'ready' || this.state === 'connecting'
  }

  /** How long the oldest outstanding command has waited with no reply; 0 when none waits. */
  stalledFor(now: number): number {
    return this.queue.length === 0 ? 0 : now - this.lastProgress
  }

  connect(): void {
    if (this.state === 'closed') return
    this.state = 'connecting'
    this.sink = undefined
    const socket = connect({ host: this.opts.host, port: this.opts.port, noDelay: true })
    this.socket = socket
    this.input = new InputBuffer()
    socket.setTimeout(this.opts.connectTimeoutMs, () => socket.destroy(new Error('connect timeout')))
    socket.once('connect', () => {
      socket.setTimeout(0)
      // A Redis host that vanishes without closing the connection is noticed eventually.
      socket.setKeepAlive(true, 10_000)
    })
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => {
      this.lastError = unavailable(err.message)
    })
    socket.on('close', () => this.onClose(socket))
    const frames = this.opts.init().map((f) => (Buffer.isBuffer(f) ? { frame: f } : f))
    let left = frames.length
    const done = () => {
      if (this.socket !== socket || this.state !== 'connecting') return
      this.state = 'ready'
      this.backoffMs = 50
      this.loggedRefusal = ''
      this.opts.onReady?.(this)
    }
    let refused = false
    for (const { frame, optional } of frames) {
      this.write(frame, {
        reply: (b, s, e) => {
          if (refused) return
          const isError = b[s] === 45 || b[s] === 33
          if (isError && (!optional || b.toString('latin1', s + 1, s + 7) === 'NOAUTH')) {
            refused = true
            this.lastError = Buffer.from(b.subarray(s, e))
            const text = b.toString('latin1', s, Math.min(e, s + 200)).trim()
            if (text !== this.loggedRefusal) this.opts.log.warn({ reply: text }, 'redis refused a connection setup command')
            this.loggedRefusal = text
            socket.destroy()
          } else if (--left === 0) done()
        },
        fail: () => undefined,
      })
    }
    if (frames.length === 0) socket.once('connect', done)
  }

  /** Drops the connection (its commands fail with `why`); it reconnects as after any loss. */
  drop(why: Buffer): void {
    this.lastError = why
    this.dropped = true
    this.socket?.destroy()
  }

  /** Sends one frame; the pending gets its reply, or fails at once when the connection is down. */
  send(frame: Buffer, p: Pending): void {
    if (this.state !== 'ready' && this.state !== 'connecting') return p.fail(this.lastError)
    this.lastUsed = Date.now()
    this.write(frame, p)
  }

  /** Sends a command built from arguments and resolves with its decoded reply (for the proxy's own use). */
  call(args: ReadonlyArray<string | Buffer | number>): Promise<ReplyValue> {
    return new Promise((resolve, reject) => {
      this.send(encodeCommand(args), {
        reply: (b, s) => {
          try {
            const v = decodeReply(b, s).value
            if (v instanceof ReplyError) reject(v)
            else resolve(v)
          } catch (err) {
            reject(err as Error)
          }
        },
        fail: (e) => reject(new ReplyError(e.toString('latin1', 1, e.length - 2))),
      })
    })
  }

  close(): void {
    // What was read on it leaves the cache like after any loss: Redis stops tracking it.
    this.closedReady = this.state === 'ready'
    this.state = 'closed'
    clearTimeout(this.retryTimer)
    this.socket?.destroy()
  }

  private write(frame: Buffer, p: Pending): void {
    const socket = this.socket!
    if (!this.corked) {
      this.corked = true
      socket.cork()
      setImmediate(this.uncork)
    }
    socket.write(frame)
    if (this.queue.length === 0) this.lastProgress = Date.now()
    this.queue.push(p)
  }

  private readonly uncork = () => {
    this.corked = false
    this.socket?.uncork()
  }

  private onData(chunk: Buffer): void {
    this.lastProgress = this.lastReplyAt = Date.now()
    const input = this.input
    if (!input.push(chunk)) return
    const buf = input.buf
    const end = buf.length
    let pos = 0
    this.opts.batch.begin()
    try {
      while (pos < end) {
        const next = scanReply(buf, pos, end)
        if (next < 0) {
          input.pos = pos
          input.wait(scanNeed)
          return
        }
        if (buf[pos] === 62 && this.opts.proto === 3) {
          this.opts.onPush?.(buf, pos, next)
        } else {
          const p = this.queue.shift() ?? this.sink
          if (p === undefined) throw new ProtocolError('reply without a request')
          p.reply(buf, pos, next)
        }
        pos = next
      }
      input.pos = pos
    } catch (err) {
      this.opts.log.error({ err }, 'bad reply stream from redis; dropping the connection')
      this.lastError = unavailable('protocol error from redis')
      this.socket?.destroy()
    } finally {
      this.opts.batch.end()
    }
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return
    const wasReady = this.state === 'ready' || this.closedReady
    if (this.state !== 'closed') this.state = 'down'
    this.trackedEpoch = -1
    const error = this.lastError
    const failed = this.queue.drain()
    const lost = wasReady && !this.dropped ? reply.error('ERR upstream connection lost (flowgate cache proxy)') : error
    this.dropped = false
    this.opts.batch.begin()
    try {
      for (const p of failed) p.fail(lost)
    } finally {
      this.opts.batch.end()
    }
    this.opts.onDown?.(this, error, wasReady)
    if (this.state === 'closed' || !this.opts.reconnect) return
    this.retryTimer = setTimeout(() => this.connect(), this.backoffMs)
    this.backoffMs = Math.min(this.backoffMs * 2, 1000)
  }
}
