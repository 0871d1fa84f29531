// One proxied WebSocket: two `ws` sockets (the client's, the upstream's) and the frames between
// them. Messages pass unchanged (text stays text, binary stays binary, the same bytes; a fragmented
// message is passed once whole, as `ws` delivers it); pings and pongs are relayed, not answered
// here; a close code and reason go on to the other side. Bounded: a side whose peer is slow to take
// bytes (bufferedAmount past the high-water mark) stops being read until they are written; a socket
// with no frame either way for idleTimeoutMs is closed (1001); a message over the limit is refused
// by `ws` while it arrives (1009), and the other side is closed with the same code.
import WebSocket from 'ws'
import type { ClosedBy } from './ws-metrics.js'
import type { OpenSocket } from './ws-sockets.js'

/** Past this many bytes queued towards a side, the other side is not read until they are written. */
export const HIGH_WATER_BYTES = 1024 * 1024
/** After the gateway closes a socket itself (idle, shutdown), how long a side has to answer before its connection is cut. */
export const CLOSE_GRACE_MS = 1000

/** How a relay ended: the first side to close (or the gateway), its code and reason. */
export interface RelayEnd {
  by: ClosedBy
  code: number
  reason: string
  bytesIn: number
  bytesOut: number
}

export interface RelayOptions {
  upstream: string
  idleTimeoutMs: number
  onEnd(end: RelayEnd): void
}

/** ws error codes (documented in its errors.md) and the close code `ws` sent for them. */
const ERROR_CLOSE: Record<string, [number, string]> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: [1009, 'message too big'],
  WS_ERR_INVALID_UTF8: [1007, 'invalid UTF-8'],
}

export class Relay implements OpenSocket {
  readonly closed: Promise<void>
  private resolveClosed!: () => void
  private first: RelayEnd | undefined
  private refused: { side: ClosedBy; code: number; reason: string } | undefined
  private open = 2
  private lastFrameAt = Date.now()
  private idle: NodeJS.Timeout | undefined
  private grace: NodeJS.Timeout | undefined
  private bytesIn = 0
  private bytesOut = 0
  private countedIn = 0
  private countedOut = 0

  constructor(
    private readonly client: WebSocket,
    private readonly up: WebSocket,
    private readonly opts: RelayOptions,
  ) {
    this.upstream = opts.upstream
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve))
    this.wire(client, up, 'client', 'in')
    this.wire(up, client, 'upstream', 'out')
    this.idle = setTimeout(this.checkIdle, opts.idleTimeoutMs)
    this.idle.unref()
  }

  readonly upstream: string

  /** Bytes relayed since the last call (the byte counters are brought up to date at scrape and at close, not per message). */
  takeBytes(): { in: number; out: number } {
    const d = { in: this.bytesIn - this.countedIn, out: this.bytesOut - this.countedOut }
    this.countedIn = this.bytesIn
    this.countedOut = this.bytesOut
    return d
  }

  bufferedAmount(): number {
    return this.client.bufferedAmount + this.up.bufferedAmount
  }

  /** The gateway closes both sides (shutdown, idle): a close frame each, their connections cut after a grace. */
  close(code: number, reason: string): void {
    this.first ??= { by: 'gateway', code, reason, bytesIn: 0, bytesOut: 0 }
    closeSide(this.client, code, reason)
    closeSide(this.up, code, reason)
    this.cutAfterGrace()
  }

  private wire(from: WebSocket, to: WebSocket, side: ClosedBy, direction: 'in' | 'out'): void {
    // The message that takes the queue past the mark carries the callback: when it has been written,
    // so has everything before it, and nothing was read after it. One callback per pause, not per message.
    const written = () => from.resume()
    const text = { binary: false }
    const binary = { binary: true }
    from.on('message', (data: Buffer, isBinary: boolean) => {
      this.lastFrameAt = Date.now()
      if (to.readyState !== WebSocket.OPEN) return
      const n = data.length
      if (direction === 'in') this.bytesIn += n
      else this.bytesOut += n
      if (to.bufferedAmount + n <= HIGH_WATER_BYTES) return to.send(data, isBinary ? binary : text)
      from.pause()
      to.send(data, isBinary ? binary : text, written)
    })
    from.on('ping', (data: Buffer) => {
      this.lastFrameAt = Date.now()
      if (to.readyState === WebSocket.OPEN) to.ping(data)
    })
    from.on('pong', (data: Buffer) => {
      this.lastFrameAt = Date.now()
      if (to.readyState === WebSocket.OPEN) to.pong(data)
    })
    from.on('error', (err: Error & { code?: string }) => {
      // ws has sent its close frame for a protocol error already; the other side gets the same code.
      const code = err.code ?? ''
      if (!code.startsWith('WS_ERR_')) return // a connection error: its close (1006) says it
      const known = ERROR_CLOSE[code]
      this.refused ??= { side, code: known?.[0] ?? 1002, reason: known?.[1] ?? 'protocol error' }
    })
    from.on('close', (code: number, reason: Buffer) => this.sideClosed(side, to, code, reason))
  }

  private sideClosed(side: ClosedBy, to: WebSocket, code: number, reason: Buffer): void {
    this.open--
    const refused = this.refused?.side === side ? this.refused : undefined
    this.first ??= { by: side, code: refused?.code ?? code, reason: refused?.reason ?? reason.toString('utf8'), bytesIn: 0, bytesOut: 0 }
    if (this.open === 0) return this.end()
    if (this.first.by === 'gateway') return
    // Passed on: the code and reason as they came (none when none came); a lost connection becomes
    // 1011 towards the client (the upstream went away) or 1001 towards the upstream (the client did).
    if (refused !== undefined) closeSide(to, refused.code, `${refused.reason} (${side})`)
    else if (code === 1005) closeSide(to, undefined, undefined)
    else if (code === 1006 || !isSendable(code)) closeSide(to, side === 'upstream' ? 1011 : 1001, side === 'upstream' ? 'upstream connection lost' : 'client connection lost')
    else closeSide(to, code, reason)
    // No grace here: the close frame waits behind what is queued for that side, which a slow reader
    // may still be taking; ws cuts a side that never answers (its closeTimeout, 30 s).
  }

  private cutAfterGrace(): void {
    if (this.grace !== undefined) return
    this.grace = setTimeout(() => {
      this.client.terminate()
      this.up.terminate()
    }, CLOSE_GRACE_MS)
    this.grace.unref()
  }

  private readonly checkIdle = () => {
    const quietMs = Date.now() - this.lastFrameAt
    if (quietMs >= this.opts.idleTimeoutMs) return this.close(1001, 'idle timeout')
    this.idle = setTimeout(this.checkIdle, this.opts.idleTimeoutMs - quietMs)
    this.idle.unref()
  }

  private end(): void {
    clearTimeout(this.idle)
    clearTimeout(this.grace)
    const first = this.first!
    this.opts.onEnd({ ...first, bytesIn: this.bytesIn, bytesOut: this.bytesOut })
    this.resolveClosed()
  }
}

/** Codes a close frame may carry (RFC 6455 §7.4: 1005, 1006 and 1015 never go on the wire). */
function isSendable(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
}

function closeSide(ws: WebSocket, code: number | undefined, reason: string | Buffer | undefined): void {
  if (ws.readyState !== WebSocket.OPEN && ws.readyState !== WebSocket.CONNECTING) return
  try {
    ws.close(code, reason)
  } catch {
    // A code `ws` refuses to send: close without one rather than leave the side open.
    ws.close()
  }
}
