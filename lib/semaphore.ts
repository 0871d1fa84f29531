/**
 * A counting semaphore with a bounded wait queue: `tryAcquire` says at once whether the caller runs,
 * waits, or is refused, so an overloaded worker answers 503 instead of queueing without end.
 */
export class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor(
    readonly limit: number,
    readonly queueLimit: number,
  ) {}

  get running(): number {
    return this.active
  }
  get queued(): number {
    return this.waiting.length
  }

  /** Resolves when a slot is held; returns false (without waiting) when the queue is full. */
  acquire(): Promise<void> | boolean {
    if (this.active < this.limit) {
      this.active++
      return true
    }
    if (this.waiting.length >= this.queueLimit) return false
    return new Promise<void>((resolve) => this.waiting.push(resolve))
  }

  release(): void {
    const next = this.waiting.shift()
    if (next) next()
    else this.active--
  }
}
