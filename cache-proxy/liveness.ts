// Telling a hung Redis from a slow answer. A shared connection whose commands wait long is not
// dropped for that alone: a script, a large command or a paused write can take that long while
// Redis serves everyone else. Redis is taken for hung only when it has answered nothing, on any
// connection, for upstream.replyTimeoutMs, and a PING on a connection of its own (answered even
// by a busy server: -BUSY) gets no answer within that time either.
import type { Logger } from '../lib/logger.js'
import { encodeCommand, reply } from './resp.js'
import { UpstreamConnection, type InitFrame, type WriteBatch } from './upstream.js'

const PING = encodeCommand(['PING'])

export interface LivenessOptions {
  host: string
  port: number
  auth: readonly string[] | undefined
  connectTimeoutMs: number
  log: Logger
  batch: WriteBatch
  timeoutMs: () => number
  /** Every shared connection, and any other whose replies prove Redis alive. */
  connections: () => Iterable<UpstreamConnection>
  /** Redis is hung: drop what waits on it. */
  onHung: (why: Buffer) => void
}

export class Liveness {
  private readonly probe: UpstreamConnection
  /** When the outstanding probe PING was sent; 0 = none outstanding. */
  private probeSentAt = 0

  constructor(private readonly opts: LivenessOptions) {
    const init: InitFrame[] = [
      ...(opts.auth !== undefined ? [{ frame: encodeCommand(['AUTH', ...opts.auth]) }] : []),
      { frame: encodeCommand(['CLIENT', 'SETNAME', 'flowgate-cache-probe']), optional: true },
    ]
    this.probe = new UpstreamConnection({
      host: opts.host,
      port: opts.port,
      proto: 2,
      connectTimeoutMs: opts.connectTimeoutMs,
      log: opts.log,
      batch: opts.batch,
      reconnect: true,
      init: () => init,
    })
  }

  start(): void {
    this.probe.connect()
  }

  close(): void {
    this.probe.close()
  }

  /** Called periodically. */
  check(now: number): void {
    const limit = this.opts.timeoutMs()
    let stalled = false
    let lastHeard = this.probe.lastReplyAt
    for (const c of this.opts.connections()) {
      if (c.stalledFor(now) >= limit) stalled = true
      if (c.lastReplyAt > lastHeard) lastHeard = c.lastReplyAt
    }
    if (!stalled || now - lastHeard < limit) return
    if (this.probeSentAt === 0) {
      this.probeSentAt = now
      this.probe.send(PING, {
        reply: () => {
          this.probeSentAt = 0
        },
        // No connection for the probe is no answer either: the clock runs on.
        fail: () => undefined,
      })
      return
    }
    if (now - this.probeSentAt < limit) return
    this.probeSentAt = 0
    const why = reply.error(`ERR upstream unavailable (flowgate cache proxy): no reply from redis within ${limit} ms`)
    this.opts.log.warn({ limitMs: limit }, 'redis answers nothing, not even a PING on a connection of its own; dropping the shared connections')
    this.probe.drop(why)
    this.opts.onHung(why)
  }
}
