// Publishes collected during one turn of the event loop, written in one go. nats.js flushes its
// outbound buffer on the next microtask, so a server handling many requests per socket read would
// otherwise make one write syscall per message; deferring to setImmediate puts every publish of
// the turn into one buffer and one write. The cost is under a millisecond of added latency.
// One batcher per connection: Node runs microtasks between setImmediate callbacks, so two batchers
// on one connection would flush in two writes.
import type { NatsConnection, PublishOptions } from 'nats'

type Pending = [subject: string, data: Uint8Array, opts: PublishOptions | undefined, onError: ((err: unknown) => void) | undefined]

export interface PublishBatcher {
  /** Queues a publish for the end of this turn; `opts` and `data` must not change after the call. */
  publish(subject: string, data: Uint8Array, opts?: PublishOptions, onError?: (err: unknown) => void): void
}

const batchers = new WeakMap<NatsConnection, PublishBatcher>()

/** The batcher of this connection, made on first use. */
export function publishBatcher(nc: NatsConnection): PublishBatcher {
  let batcher = batchers.get(nc)
  if (batcher === undefined) {
    batcher = createPublishBatcher(nc)
    batchers.set(nc, batcher)
  }
  return batcher
}

function createPublishBatcher(nc: NatsConnection): PublishBatcher {
  let queue: Pending[] = []
  const flush = () => {
    const batch = queue
    queue = []
    for (const [subject, data, opts, onError] of batch) {
      try {
        nc.publish(subject, data, opts)
      } catch (err) {
        onError?.(err)
      }
    }
  }
  return {
    publish(subject, data, opts, onError) {
      if (queue.length === 0) setImmediate(flush)
      queue.push([subject, data, opts, onError])
    },
  }
}
