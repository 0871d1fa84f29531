// Cumulative acknowledgements for plain JetStream publishes. Every `every`-th event of a burst, and
// its last, carries a reply subject; JetStream stores one connection's publishes in order, so that
// one ack (or its failure) settles every event sent before it. This keeps the bookkeeping: what was
// sent and not settled, in send order, and which sends wait for an ack since when. No I/O, no clock.

export class CumulativeAcks<T extends { n: number }> {
  /** Sent, not yet settled, in send order. */
  private readonly unsettled: T[] = []
  /** Send number of each send that asked for an ack -> when it was sent (insertion order is send order). */
  private readonly awaiting = new Map<number, number>()
  private seq = 0
  private sinceAck = 0

  constructor(private readonly every: number) {}

  /** Sent and not settled. */
  get inFlight(): number {
    return this.unsettled.length
  }

  /** Sends waiting for their ack. */
  get waiting(): number {
    return this.awaiting.size
  }

  /** Records a send and numbers it (`item.n`); true when this send must ask for an ack. */
  send(item: T, lastOfBurst: boolean, nowMs: number): boolean {
    item.n = ++this.seq
    this.unsettled.push(item)
    const ask = lastOfBurst || ++this.sinceAck >= this.every
    if (ask) {
      this.sinceAck = 0
      this.awaiting.set(item.n, nowMs)
    }
    return ask
  }

  /** The answer to send `n` arrived: every send up to it is settled and returned; undefined when `n` was settled already. */
  settle(n: number): T[] | undefined {
    if (!this.awaiting.has(n)) return undefined
    for (const k of this.awaiting.keys()) {
      if (k > n) break
      this.awaiting.delete(k)
    }
    let count = 0
    while (count < this.unsettled.length && this.unsettled[count]!.n <= n) count++
    return this.unsettled.splice(0, count)
  }

  /** The newest send that asked for an ack before `sentBeforeMs` (its wait is over), if any. */
  overdue(sentBeforeMs: number): number | undefined {
    let last: number | undefined
    for (const [n, sentAt] of this.awaiting) {
      if (sentAt >= sentBeforeMs) break
      last = n
    }
    return last
  }
}
