// The Redis side of client tracking: a RESP2 connection subscribed to `__redis__:invalidate`, the
// REDIRECT target of every shared connection. Each (re)connection starts a new epoch; a fill is only
// stored when it was read under the current epoch, so nothing read while tracking was broken stays.
import type { Logger } from '../lib/logger.js'
import { decodeReply, encodeCommand } from './resp.js'
import { UpstreamConnection, type ConnectionOptions, type Pending } from './upstream.js'

export interface TrackerHandlers {
  onReady(id: number, epoch: number): void
  onLost(): void
  /** Keys invalidated, or null when Redis flushed (FLUSHALL, FLUSHDB, a reload). */
  onKeys(keys: Buffer[] | null): void
}

export class Tracker {
  epoch = 0
  id = -1
  ready = false
  readonly conn: UpstreamConnection
  private started = 0
  private readonly log: Logger

  constructor(
    opts: Omit<ConnectionOptions, 'init' | 'onReady' | 'onDown' | 'reconnect' | 'proto'> & { auth: readonly string[] | undefined },
    private readonly handlers: TrackerHandlers,
  ) {
    this.log = opts.log
    const init = [
      ...(opts.auth !== undefined ? [encodeCommand(['AUTH', ...opts.auth])] : []),
      { frame: encodeCommand(['CLIENT', 'SETNAME', 'flowgate-cache-tracking']), optional: true },
    ]
    this.conn = new UpstreamConnection({
      ...opts,
      proto: 2,
      reconnect: true,
      init: () => init,
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
