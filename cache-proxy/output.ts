// A client's replies, in request order: each command takes a place (a Slot) when it is read, and
// replies are written only when every earlier one is out, so a cached reply waits behind an
// earlier miss. Replies made during one batch of upstream replies leave in one write. A client
// that stops reading is paused at a soft bound and disconnected at limits.maxClientOutputBytes.
import type { Socket } from 'node:net'
import type { Logger } from '../lib/logger.js'
import type { CacheStats } from './cache.js'
import { Slot, type SlotOwner } from './fill.js'
import type { Policy } from './policy.js'
import { Queue, type WriteBatch } from './upstream.js'

export const SOFT_OUTPUT_BYTES = 1024 * 1024

export interface OutputHost {
  readonly log: Logger
  readonly stats: CacheStats
  readonly batch: WriteBatch
  policy(): Policy
}

export interface OutputEvents {
  /** Every reply is out. */
  drained(): void
  /** Some replies went out, others still wait. */
  progressed(pending: number): void
  /** The client read enough of its replies to be read from again. */
  writable(): void
  /** Past the output bound: the session must end. */
  overflow(): void
}

export class ReplyOrder implements SlotOwner {
  /** The client does not read its replies: reading its commands waits. */
  paused = false
  closed = false
  private readonly slots = new Queue<Slot>()
  private readonly out: Buffer[] = []

  constructor(
    private readonly host: OutputHost,
    private readonly socket: Socket,
    private readonly events: OutputEvents,
  ) {}

  /** Replies owed: places taken whose reply is not written yet. */
  get pending(): number {
    return this.slots.length
  }

  /** A place for a reply that comes later. */
  take(): Slot {
    const slot = new Slot(this)
    this.slots.push(slot)
    return slot
  }

  /** Takes the next place for a slot made by the caller (a write that acts on its reply). */
  push(slot: Slot): void {
    this.slots.push(slot)
  }

  /** Writes `data` now, or behind earlier replies still on their way. */
  answer(data: Buffer): void {
    if (this.slots.length === 0) return this.send(data)
    const slot = new Slot(this)
    slot.data = data
    this.slots.push(slot)
  }

  /** Sets the reply of a slot and writes every reply that is now next in order. */
  resolve(slot: Slot, data: Buffer): void {
    if (slot.data !== null) return
    slot.data = data
    if (this.slots.peek() !== slot || this.closed) return
    for (let s = this.slots.peek(); s !== undefined && s.data !== null; s = this.slots.peek()) {
      this.slots.shift()
      this.send(s.data)
    }
    if (this.slots.length === 0) this.events.drained()
    else this.events.progressed(this.slots.length)
  }

  upstreamFailed(): void {
    this.host.stats.upstreamErrors++
  }

  private send(data: Buffer): void {
    if (this.closed || data.length === 0) return
    const batch = this.host.batch
    if (batch.depth > 0) {
      // Replies produced in one batch leave in one write: cheaper than a corked writev of many.
      if (this.out.length === 0) batch.corked.push(this)
      this.out.push(data)
      return
    }
    this.socket.write(data)
    const queued = this.socket.writableLength
    if (queued > SOFT_OUTPUT_BYTES) this.checkOutput(queued)
  }

  /** Writes what the batch collected (called once per batch by WriteBatch). */
  uncork(): void {
    const out = this.out
    if (out.length === 0 || this.closed) {
      out.length = 0
      return
    }
    this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))
    out.length = 0
    const queued = this.socket.writableLength
    if (queued > SOFT_OUTPUT_BYTES) this.checkOutput(queued)
  }

  private checkOutput(queued: number): void {
    const max = this.host.policy().source.limits.maxClientOutputBytes
    if (queued > max) return this.overflowed(queued)
    if (this.paused) return
    this.paused = true
    this.socket.once('drain', () => {
      this.paused = false
      this.events.writable()
    })
  }

  /** Disconnects a client whose unread replies passed the bound. */
  overflowed(queued: number): void {
    this.host.stats.outputLimitDisconnects++
    this.host.log.warn({ queued, max: this.host.policy().source.limits.maxClientOutputBytes }, 'client does not read its replies; disconnecting it')
    this.socket.destroy()
    this.events.overflow()
  }

  /** Writes what is collected, then closes the connection once it is flushed (Redis closes; it does not half-close). */
  close(): void {
    if (this.closed) return
    this.uncork()
    this.closed = true
    const socket = this.socket
    socket.end(() => socket.destroy())
  }

  /** Stops writing (the connection is gone). */
  abandon(): void {
    this.closed = true
    this.out.length = 0
  }
}
