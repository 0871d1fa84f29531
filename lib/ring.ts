/** A bounded FIFO queue on a ring buffer: no shifting, grows by doubling up to `cap`, never past it. */
export class Ring<T> {
  private items: Array<T | undefined>
  private head = 0
  size = 0

  constructor(readonly cap: number) {
    this.items = new Array<T | undefined>(Math.min(cap, 1024))
  }

  /** False (and nothing stored) when full. */
  push(item: T): boolean {
    if (this.size >= this.cap) return false
    if (this.size === this.items.length) this.grow()
    this.items[(this.head + this.size) % this.items.length] = item
    this.size++
    return true
  }

  /** The oldest item; call only when size > 0. */
  shift(): T {
    const item = this.items[this.head] as T
    this.items[this.head] = undefined
    this.head = (this.head + 1) % this.items.length
    this.size--
    return item
  }

  private grow() {
    const next = new Array<T | undefined>(Math.min(this.cap, this.items.length * 2))
    for (let i = 0; i < this.size; i++) next[i] = this.items[(this.head + i) % this.items.length]
    this.items = next
    this.head = 0
  }
}
