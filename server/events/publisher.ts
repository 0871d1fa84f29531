// Fire-and-forget gateway events. emit() only appends to a bounded queue and returns; a pump
// publishes to JetStream with a bounded number of events unsettled. When NATS is away the pump
// waits and the queue fills; past its bound new events are dropped and counted, never blocking a
// request. A failed publish is retried with the same Nats-Msg-Id, which the stream de-duplicates.
import { randomBytes } from 'node:crypto'
import { createInbox, type Msg, type NatsConnection } from 'nats'
import { Counter, type Registry } from 'prom-client'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { scrapedGauge } from '../../lib/metrics.js'
import { connectionState, inboxOf } from '../../lib/nats.js'
import { publishBatcher } from '../../lib/publish-batch.js'
import { ensureGatewayStream, retryInBackground, type StreamSettings } from '../../lib/streams.js'
import { headers as wire, subjects } from '../../lib/subjects.js'
import { throttledWarning } from '../../lib/throttle.js'
import { RequestHeaders } from '../../lib/wire-headers.js'
import { EVENT_KINDS, EVENT_VERSION, type EventKind, type GatewayEvent } from '../../schemas/events.js'
import { CumulativeAcks } from './acks.js'
import { Ring } from '../../lib/ring.js'

const MAX_IN_FLIGHT = 512
/** At most this many events go out without asking for an ack. */
const ACK_EVERY = 64
const PUMP_DELAY_MS = 1
const MAX_ATTEMPTS = 5
/** After a failed publish the pump waits this long (JetStream may be starting, or the stream not created yet). */
const BACKOFF_MS = 1000
const PUBLISH_TIMEOUT_MS = 2000
const LOG_EVERY_MS = 10_000

export type DropReason = 'buffer_full' | 'publish_failed' | 'closed'

/** What every event has, filled in by the publisher. */
type Filled = 'v' | 'id' | 'ts' | 'source'
/** One event without the fields the publisher fills in. */
export type EventInput = GatewayEvent extends infer E ? (E extends GatewayEvent ? Omit<E, Filled> : never) : never

export interface EventPublisher {
  /** This gateway instance's id (the `source` of its events). */
  readonly source: string
  /** Queues an event; never blocks, never throws. */
  emit(event: EventInput): void
  stats(): { published: number; dropped: Record<DropReason, number>; queued: number; inFlight: number; retried: number }
  /** Resolves when everything queued was published (or `timeoutMs` passed). */
  flush(timeoutMs?: number): Promise<boolean>
  /** Stops accepting events, publishes what is queued within the deadline. */
  close(timeoutMs?: number): Promise<void>
}

interface Pending {
  subject: string
  id: string
  /** The encoded event, kept for a retry. */
  data: Uint8Array
  attempts: number
  /** Send number of the latest attempt. */
  n: number
}

const SWEEP_MS = 250
const decoder = new TextDecoder()
const ERROR_PREFIX = new TextEncoder().encode('{"error"')

function isApiError(data: Uint8Array): boolean {
  if (data.length < ERROR_PREFIX.length) return false
  for (let i = 0; i < ERROR_PREFIX.length; i++) if (data[i] !== ERROR_PREFIX[i]) return false
  return true
}

const SUBJECT = Object.fromEntries(EVENT_KINDS.map((kind) => [kind, subjects.gatewayEvent(kind)])) as Record<EventKind, string>

/** Starts the publisher; the stream is created or checked in the background (the gateway never waits for it). */
export function createEventPublisher(
  nc: NatsConnection,
  config: Pick<Config, 'eventsBufferSize'> & StreamSettings,
  deps: { log: Logger; registry?: Registry; ensureStream?: boolean },
): EventPublisher {
  const { log } = deps
  const source = `gw-${randomBytes(4).toString('hex')}`
  const ackPrefix = `${createInbox(inboxOf(nc))}.`
  const acks = new CumulativeAcks<Pending>(ACK_EVERY)
  // The request batcher's: events go out in the same write as the requests of the same turn.
  const batcher = publishBatcher(nc)
  let sweeper: NodeJS.Timeout | undefined
  const ackSub = nc.subscribe(`${ackPrefix}*`, { callback: onAck })
  const queue = new Ring<Pending>(config.eventsBufferSize)
  let seq = 0
  let published = 0
  let retried = 0
  const dropped: Record<DropReason, number> = { buffer_full: 0, publish_failed: 0, closed: 0 }
  let connected = !nc.isClosed()
  let closed = false
  let scheduled = false
  let backoff: NodeJS.Timeout | undefined
  let flushWaiters: Array<() => void> = []
  const warnDropped = throttledWarning(log, LOG_EVERY_MS)
  const warnFailed = throttledWarning(log, LOG_EVERY_MS)

  const droppedCounter = deps.registry
    ? new Counter({ name: 'flowgate_events_dropped_total', help: 'Gateway events dropped, by reason', labelNames: ['reason'] as const, registers: [deps.registry] })
    : undefined
  const publishedCounter = deps.registry
    ? new Counter({ name: 'flowgate_events_published_total', help: 'Gateway events stored in JetStream', registers: [deps.registry] })
    : undefined
  // Every reason present from the start, so "no drops" is a zero an alert can read, not a missing series.
  for (const reason of Object.keys(dropped) as DropReason[]) droppedCounter?.inc({ reason }, 0)
  if (deps.registry) {
    scrapedGauge(deps.registry, 'flowgate_events_queued', 'Gateway events waiting to be published', () => queue.size)
  }

  const stopStream =
    deps.ensureStream === false
      ? () => {}
      : retryInBackground(
          'ensure gateway event stream',
          async () => {
            await ensureGatewayStream(nc, config, log)
            resume() // events waiting out a backoff can go now
          },
          log,
          1000,
        )

  connectionState(nc).listen({
    disconnect: () => (connected = false),
    closed: () => (connected = false),
    reconnect() {
      connected = true
      resume()
    },
  })

  function drop(reason: DropReason, n = 1) {
    dropped[reason] += n
    droppedCounter?.inc({ reason }, n)
    warnDropped({ reason, dropped }, 'gateway events dropped')
  }

  function schedule() {
    if (scheduled || backoff !== undefined) return
    scheduled = true
    // A short delay gathers the events of many requests into one burst, which then needs one ack.
    setTimeout(pump, PUMP_DELAY_MS)
  }

  function resume() {
    clearTimeout(backoff)
    backoff = undefined
    schedule()
  }

  function pump() {
    scheduled = false
    while (connected && queue.size > 0 && acks.inFlight < MAX_IN_FLIGHT) {
      const p = queue.shift()
      send(p, queue.size === 0 || acks.inFlight + 1 >= MAX_IN_FLIGHT)
    }
    if (queue.size === 0 && acks.inFlight === 0) settle()
  }

  // Plain publishes with cumulative acks (./acks.ts): a request costs no promise, timer, inbox or ack
  // message of its own (js.publish() per event cost the gateway ~50 µs of CPU per request; an ack per
  // event still ~15).
  function send(p: Pending, last: boolean) {
    p.attempts++
    const askAck = acks.send(p, last, Date.now())
    if (askAck && sweeper === undefined) sweeper = setInterval(sweepOverdue, SWEEP_MS).unref()
    // Headers of its own per event: the batcher publishes at the end of the turn, not now.
    const headers = new RequestHeaders().put(wire.msgId, p.id)
    batcher.publish(p.subject, p.data, askAck ? { reply: ackPrefix + p.n, headers } : { headers }, onPublishError)
  }

  function onPublishError(err: unknown) {
    // Only a closed connection throws; the pump stops, and the sweep fails what was sent.
    if (!connected) return
    connected = false
    log.warn({ err }, 'gateway events: NATS connection closed')
  }

  function onAck(err: Error | null, msg: Msg) {
    if (err) return
    // A stream error answers {"error":...}; no stream on the subject answers a 503 status with no body.
    const ok = !(msg.headers?.hasError || msg.data.length === 0 || isApiError(msg.data))
    settleUpTo(Number(msg.subject.slice(ackPrefix.length)), ok ? undefined : (msg.headers?.description ?? decoder.decode(msg.data)))
  }

  /** Settles every event sent up to the n-th: stored, or failed with `reason`. */
  function settleUpTo(n: number, reason: string | undefined) {
    const batch = acks.settle(n)
    if (batch === undefined) return // already settled (timed out, or covered by a later ack)
    if (reason === undefined) {
      published += batch.length
      publishedCounter?.inc(batch.length)
    } else {
      for (const p of batch) failed(p, reason)
    }
    if (queue.size > 0) schedule()
    else if (acks.inFlight === 0) settle()
  }

  function sweepOverdue() {
    const overdue = acks.overdue(Date.now() - PUBLISH_TIMEOUT_MS)
    if (overdue !== undefined) settleUpTo(overdue, 'no ack in time')
    if (acks.waiting === 0 && sweeper !== undefined) {
      clearInterval(sweeper)
      sweeper = undefined
    }
  }

  function failed(p: Pending, reason: string) {
    pause()
    if (p.attempts < MAX_ATTEMPTS && queue.push(p)) retried++
    else {
      drop('publish_failed')
      warnFailed({ reason }, 'gateway event publish failed')
    }
  }

  function pause() {
    if (backoff !== undefined) return
    backoff = setTimeout(() => {
      backoff = undefined
      schedule()
    }, BACKOFF_MS)
    backoff.unref()
  }

  function settle() {
    const waiters = flushWaiters
    flushWaiters = []
    for (const w of waiters) w()
  }

  function flush(timeoutMs = 5000): Promise<boolean> {
    if (queue.size === 0 && acks.inFlight === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      flushWaiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
      schedule()
    })
  }

  return {
    source,
    emit(event) {
      if (closed) {
        drop('closed')
        return
      }
      const id = `${source}-${++seq}`
      // The common fields spliced in front of the event's own: no merged copy of the object per event.
      const data = Buffer.from(`{"v":${EVENT_VERSION},"id":"${id}","ts":${Date.now()},"source":"${source}",${JSON.stringify(event).slice(1)}`)
      if (!queue.push({ subject: SUBJECT[event.kind], id, data, attempts: 0, n: 0 })) {
        drop('buffer_full')
        return
      }
      if (connected) schedule()
    },
    stats: () => ({ published, dropped: { ...dropped }, queued: queue.size, inFlight: acks.inFlight, retried }),
    flush,
    async close(timeoutMs = 2000) {
      closed = true
      stopStream()
      clearTimeout(backoff)
      backoff = undefined
      if (connected) await flush(timeoutMs)
      if (queue.size + acks.inFlight > 0) drop('closed', queue.size + acks.inFlight)
      clearInterval(sweeper)
      if (!nc.isClosed()) ackSub.unsubscribe()
    },
  }
}
