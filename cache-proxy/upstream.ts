// Connections to Redis. A shared connection pipelines the commands of many clients: writes made
// in one event-loop turn leave in one syscall, and replies are matched to their senders in FIFO
// order by scanning (not decoding) the reply stream. Connections reconnect with backoff; while one
// is down, a command fails at once instead of waiting.
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
  readonly user: string | undefined
  readonly pass: string | undefined
}

/** The commands that give a fresh connection an identity: HELLO/AUTH, SELECT. */
export function identityInit(id: Identity): Buffer[] {
  const out: Buffer[] = []
  if (id.proto === 3 || id.pass !== undefined) {
    const args: string[] = ['HELLO', String(id.proto)]
    if (id.pass !== undefined) args.push('AUTH', id.user ?? 'default', id.pass)
    out.push(encodeCommand(args))
  }
  if (id.db !== 0) out.push(encodeCommand(['SELECT', String(id.db)]))
  return out
}

export interface ConnectionOptions {
  host: string
  port: number
  proto: 2 | 3
  connectTimeoutMs: number
  /** Commands outstanding with no reply for this long drop the connection; 0 = no limit. */
  replyTimeoutMs?: number
  log: Logger
  batch: WriteBatch
  /** Frames sent first on every (re)connection; an error reply to any of them fails the connection. */
  init: () => Buffer[]
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
  private lastProgress = 0
  private watchdog: NodeJS.Timeout | undefined

  constructor(private readonly opts: ConnectionOptions) {}

  get pending(): number {
    return this.queue.length
  }

  /** True when a command sent now will be written (possibly after init). */
  get usable(): boolean {
    return this.state === 'ready' || this.state === 'connecting'
  }

  connect(): void {
    if (this.state === 'closed') return
    const limit = this.opts.replyTimeoutMs ?? 0
    if (limit > 0 && !this.watchdog) {
      this.watchdog = setInterval(() => this.checkStalled(limit), Math.min(1000, Math.ceil(limit / 2)))
      this.watchdog.unref()
    }
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
    const frames = this.opts.init()
    let left = frames.length
    const done = () => {
      if (this.socket !== socket || this.state !== 'connecting') return
      this.state = 'ready'
      this.backoffMs = 50
      this.opts.onReady?.(this)
    }
    let refused = false
    for (const frame of frames) {
      this.write(frame, {
        reply: (b, s, e) => {
          if (refused) return
          if (b[s] === 45 || b[s] === 33) {
            refused = true
            this.lastError = Buffer.from(b.subarray(s, e))
            this.opts.log.warn({ reply: b.toString('latin1', s, Math.min(e, s + 200)).trim() }, 'redis refused a connection setup command')
            socket.destroy()
          } else if (--left === 0) done()
        },
        fail: () => undefined,
      })
    }
    if (frames.length === 0) socket.once('connect', done)
  }

  /** Sends one frame; the pending gets its reply, or fails at once when the connection is down. */
  send(frame: Buffer, p: Pending): void {
    if (this.state !== 'ready' && this.state !== 'connecting') return p.fail(this.lastError)
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
    this.state = 'closed'
    clearTimeout(this.retryTimer)
    clearInterval(this.watchdog)
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

  private checkStalled(limitMs: number): void {
    if (this.queue.length === 0 || this.state === 'closed' || Date.now() - this.lastProgress <= limitMs) return
    this.lastError = unavailable(`no reply from redis within ${limitMs} ms`)
    this.opts.log.warn({ pending: this.queue.length, limitMs }, 'redis stopped answering; dropping the connection')
    this.socket?.destroy()
  }

  private readonly uncork = () => {
    this.corked = false
    this.socket?.uncork()
  }

  private onData(chunk: Buffer): void {
    this.lastProgress = Date.now()
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
    const wasReady = this.state === 'ready'
    if (this.state !== 'closed') this.state = 'down'
    this.trackedEpoch = -1
    const error = this.lastError
    const failed = this.queue.drain()
    const lost = wasReady ? reply.error('ERR upstream connection lost (flowgate cache proxy)') : error
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

/**
 * The Redis side of client tracking: a RESP2 connection subscribed to `__redis__:invalidate`, the
 * REDIRECT target of every shared connection. Each (re)connection starts a new epoch; a fill is only
 * stored when it was read under the current epoch, so nothing read while tracking was broken stays.
 */
export class Tracker {
  epoch = 0
  id = -1
  ready = false
  private conn: UpstreamConnection
  private started = 0
  private readonly log: Logger

  constructor(
    opts: Omit<ConnectionOptions, 'init' | 'onReady' | 'onDown' | 'reconnect' | 'proto'> & { pass?: string; user?: string },
    private readonly handlers: { onReady(id: number, epoch: number): void; onLost(): void; onKeys(keys: Buffer[] | null): void },
  ) {
    this.log = opts.log
    const auth = opts.pass !== undefined ? [encodeCommand(opts.user ? ['AUTH', opts.user, opts.pass] : ['AUTH', opts.pass])] : []
    auth.push(encodeCommand(['CLIENT', 'SETNAME', 'flowgate-cache-tracking']))
    this.conn = new UpstreamConnection({
      ...opts,
      proto: 2,
      reconnect: true,
      init: () => auth,
      onReady: (c) => this.subscribe(c),
      onDown: () => {
        this.epoch++
        this.id = -1
        if (this.ready) {
          this.ready = false
          handlers.onLost()
        }
      },
    })
  }

  start(): void {
    this.conn.connect()
  }

  close(): void {
    this.conn.close()
  }

  private subscribe(c: UpstreamConnection): void {
    const attempt = ++this.started
    c.call(['CLIENT', 'ID'])
      .then((id) => {
        if (attempt !== this.started) return
        this.id = Number(id)
        // SUBSCRIBE's confirmation and every later message arrive on this connection; the sink
        // reads the messages that come without a request.
        const sink = this.messages(attempt)
        c.sink = sink
        c.send(encodeCommand(['SUBSCRIBE', '__redis__:invalidate']), sink)
      })
      .catch((err: Error) => this.log.error({ err: err.message }, 'tracking connection setup failed'))
  }

  private messages(attempt: number): Pending {
    return {
      reply: (b, s) => {
        const v = decodeReply(b, s).value
        if (!Array.isArray(v) || attempt !== this.started) return
        const kind = Buffer.isBuffer(v[0]) ? v[0].toString() : String(v[0])
        if (kind === 'subscribe') {
          this.epoch++
          this.ready = true
          this.handlers.onReady(this.id, this.epoch)
        } else if (kind === 'message') {
          const payload = v[2]
          this.handlers.onKeys(Array.isArray(payload) ? (payload.filter((x) => Buffer.isBuffer(x)) as Buffer[]) : null)
        }
      },
      fail: () => undefined,
    }
  }
}
