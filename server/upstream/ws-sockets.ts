// The gateway's open WebSockets: bounded per gateway and per client (a handshake under way holds
// its place too, so a flood of upgrades cannot pass the bound before any completes), counted per
// upstream for the gauge, and closed together on shutdown (1001 to both sides).
import { errors, type FlowgateError } from '../../lib/errors.js'

/** An open relay as the registry sees it (./ws-relay.ts). */
export interface OpenSocket {
  readonly upstream: string
  /** Message bytes relayed each way since the last call. */
  takeBytes(): { in: number; out: number }
  /** Bytes queued on both sides, not yet written to their connections. */
  bufferedAmount(): number
  /** Closes both sides with this code and reason. */
  close(code: number, reason: string): void
  /** Resolves once both sides are closed. */
  readonly closed: Promise<void>
}

export interface WebSocketLimits {
  maxSockets: number
  maxPerClient: number
}

export class WebSocketRegistry {
  private total = 0
  private readonly perClient = new Map<string, number>()
  private readonly perUpstream = new Map<string, number>()
  private readonly open = new Set<OpenSocket>()
  private closing = false

  constructor(private readonly limits: WebSocketLimits) {}

  /** Takes a place for `clientKey`, or says why not (503 when the gateway is full or closing, 429 when the client is). */
  admit(clientKey: string): FlowgateError | undefined {
    if (this.closing) return errors.serviceUnavailable('The gateway is shutting down')
    if (this.total >= this.limits.maxSockets) return errors.serviceUnavailable('Too many open WebSockets on this gateway')
    const mine = this.perClient.get(clientKey) ?? 0
    if (mine >= this.limits.maxPerClient) {
      return errors.rateLimited(`At most ${this.limits.maxPerClient} open WebSockets per client`, { headers: { 'retry-after': '1' } })
    }
    this.total++
    // Bounded: a key is present only while it holds a place, and places are bounded by maxSockets.
    this.perClient.set(clientKey, mine + 1)
    return undefined
  }

  /** Gives back a place taken by admit(). */
  release(clientKey: string): void {
    this.total--
    const mine = (this.perClient.get(clientKey) ?? 1) - 1
    if (mine <= 0) this.perClient.delete(clientKey)
    else this.perClient.set(clientKey, mine)
  }

  add(socket: OpenSocket): void {
    this.open.add(socket)
    this.perUpstream.set(socket.upstream, (this.perUpstream.get(socket.upstream) ?? 0) + 1)
  }

  delete(socket: OpenSocket): void {
    if (!this.open.delete(socket)) return
    const n = (this.perUpstream.get(socket.upstream) ?? 1) - 1
    if (n <= 0) this.perUpstream.delete(socket.upstream)
    else this.perUpstream.set(socket.upstream, n)
  }

  /** Open sockets per upstream (the gauge). */
  byUpstream(): ReadonlyMap<string, number> {
    return this.perUpstream
  }

  /** The open sockets (the byte counters read them at scrape). */
  sockets(): Iterable<OpenSocket> {
    return this.open
  }

  get size(): number {
    return this.open.size
  }

  /** Bytes the gateway holds for all open sockets (backpressure keeps it near the high-water mark per socket). */
  bufferedBytes(): number {
    let n = 0
    for (const s of this.open) n += s.bufferedAmount()
    return n
  }

  /** Refuses new upgrades, closes every open socket with 1001, and waits (at most `waitMs`) for them to go. */
  async close(waitMs: number): Promise<void> {
    this.closing = true
    const all = [...this.open]
    for (const s of all) s.close(1001, 'gateway shutting down')
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(all.map((s) => s.closed)), new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))])
    clearTimeout(timer)
  }
}
