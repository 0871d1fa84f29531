// The subscriber: a durable pull consumer on the gateway event stream with explicit acks. An event
// is acked only after its actions (a block written to KV, an alert published) succeeded, so a crash
// loses nothing: the unacked event comes back, and the rules make handling it again harmless.
// An event that cannot be read (malformed, unknown version) is terminated with the reason logged,
// never redelivered in a loop.
import { AckPolicy, DeliverPolicy, headers as natsHeaders, nanos, type ConsumerMessages, type JsMsg, type NatsConnection } from 'nats'
import { createBlocklistStore } from '../lib/blocklist.js'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { ensureGatewayStream, isNotFound, retryInBackground, type StreamSettings } from '../lib/streams.js'
import { consumers, headers, streams, subjects } from '../lib/subjects.js'
import { decodeEvent, EVENT_KINDS, type EventKind, type GatewayEvent, type IpBlocked, type RateLimitHit } from '../schemas/events.js'
import { createRules, type Action, type RuleConfig } from './rules.js'

const NAK_DELAY_MS = 1000
const REPLAY_MAX = 200_000

export type SubscriberConfig = RuleConfig &
  StreamSettings &
  Pick<Config, 'subscriberAckWaitSec' | 'subscriberMaxDeliver'>

export interface SubscriberStats {
  /** Events handled and acked. */
  processed: number
  /** Events terminated as unreadable. */
  terminated: number
  /** Events whose actions failed (nak'ed for redelivery). */
  failed: number
  blocks: number
  alerts: number
  /** Processed events by kind (every kind present, zero or not). */
  byKind: Record<EventKind, number>
  /** Alerts raised by alert kind. */
  alertsByKind: Record<string, number>
}

/** How far the durable consumer is behind the stream. */
export interface ConsumerLag {
  /** Events in the stream not yet delivered to the consumer. */
  pending: number
  /** Events delivered and not yet acked. */
  ackPending: number
}

export interface Subscriber {
  stats(): SubscriberStats
  /** Resolves once the consumer is running. */
  started(): Promise<void>
  /** The consumer's lag as the server sees it (bounded wait); undefined when it cannot be asked. */
  lag(timeoutMs?: number): Promise<ConsumerLag | undefined>
  close(): Promise<void>
}

export interface SubscriberDeps {
  log: Logger
  /** Called after each acked event (tests count with it). */
  onProcessed?: (event: GatewayEvent, actions: readonly Action[]) => void
}

/** Starts consuming in the background; waits for JetStream if it is not there yet. */
export function createSubscriber(nc: NatsConnection, config: SubscriberConfig, deps: SubscriberDeps): Subscriber {
  const { log } = deps
  const rules = createRules(config)
  // Write-only: the gateways enforce blocks; the subscriber never reads them back.
  const blocklist = createBlocklistStore(nc, config)
  const byKind = Object.fromEntries(EVENT_KINDS.map((k) => [k, 0])) as Record<EventKind, number>
  const stats: SubscriberStats = { processed: 0, terminated: 0, failed: 0, blocks: 0, alerts: 0, byKind, alertsByKind: {} }
  let messages: ConsumerMessages | undefined
  let closed = false
  let markStarted: () => void = () => {}
  const startedPromise = new Promise<void>((resolve) => (markStarted = resolve))
  const js = nc.jetstream({ timeout: 5000 })

  const begin = () => retryInBackground('start subscriber', consumeEvents, log)
  let stopRetry = begin()

  async function consumeEvents() {
    await ensureGatewayStream(nc, config, log)
    await ensureConsumer()
    await replayRecentHits()
    if (closed) return
    const consumer = await js.consumers.get(streams.gateway, consumers.subscriber)
    messages = await consumer.consume({ max_messages: 256 })
    markStarted()
    log.info({ stream: streams.gateway, consumer: consumers.subscriber }, 'subscriber consuming')
    // The loop ends only when the consumer goes away (deleted, connection closed): start over unless closing.
    loop(messages).then(
      () => restart(undefined),
      (err: unknown) => restart(err),
    )
  }

  function restart(err: unknown) {
    if (closed || nc.isClosed()) return
    log.error({ err }, 'subscriber stopped consuming; starting again')
    setTimeout(() => {
      if (!closed) stopRetry = begin()
    }, 1000).unref()
  }

  async function ensureConsumer() {
    const jsm = await nc.jetstreamManager({ timeout: 5000 })
    const want = {
      durable_name: consumers.subscriber,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(config.subscriberAckWaitSec * 1000),
      max_deliver: config.subscriberMaxDeliver,
      filter_subject: subjects.gatewayAll,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 1000,
    }
    try {
      const info = await jsm.consumers.info(streams.gateway, consumers.subscriber)
      if (info.config.ack_wait !== want.ack_wait || info.config.max_deliver !== want.max_deliver) {
        await jsm.consumers.update(streams.gateway, consumers.subscriber, { ack_wait: want.ack_wait, max_deliver: want.max_deliver })
      }
    } catch (err) {
      if (!isNotFound(err)) throw err
      await jsm.consumers.add(streams.gateway, want)
    }
  }

  /** Rebuilds the auto-block windows from the stream, so hits acked before a restart still count. */
  async function replayRecentHits() {
    const since = new Date(Date.now() - config.autoBlockWindowSec * 1000).toISOString()
    const oc = await js.consumers.get(streams.gateway, {
      filterSubjects: subjects.gatewayEvent('rate_limit.hit'),
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: since,
    })
    let replayed = 0
    for (;;) {
      const batch = await oc.fetch({ max_messages: 1000, expires: 1000 })
      let got = 0
      let last = false
      for await (const m of batch) {
        got++
        const decoded = decodeEvent(m.data)
        if (decoded.ok && decoded.value.kind === 'rate_limit.hit') rules.remember(decoded.value as RateLimitHit)
        if (m.info.pending === 0) last = true
      }
      replayed += got
      if (got === 0 || last || replayed >= REPLAY_MAX) break
    }
    await oc.delete().catch((err: unknown) => log.debug({ err }, 'replay consumer already gone'))
    if (replayed > 0) log.info({ replayed }, 'auto-block windows rebuilt from the stream')
  }

  async function loop(iter: ConsumerMessages) {
    for await (const m of iter) await handle(m)
  }

  async function handle(m: JsMsg) {
    const decoded = decodeEvent(m.data)
    if (!decoded.ok) return terminate(m, decoded.reason)
    const event = decoded.value
    if (m.subject !== subjects.gatewayEvent(event.kind)) return terminate(m, `kind ${event.kind} on subject ${m.subject}`)
    const actions = rules.handle(event)
    try {
      for (const action of actions) await perform(action)
    } catch (err) {
      stats.failed++
      log.warn({ err, event: event.id, deliveries: m.info.redeliveryCount }, 'event actions failed; will be redelivered')
      m.nak(NAK_DELAY_MS)
      return
    }
    m.ack()
    stats.processed++
    stats.byKind[event.kind]++
    deps.onProcessed?.(event, actions)
  }

  function terminate(m: JsMsg, reason: string) {
    stats.terminated++
    log.warn({ subject: m.subject, seq: m.seq, reason }, 'unreadable gateway event terminated')
    // term() without a reason: nats-server 2.9 does not parse "+TERM <reason>" and would redeliver.
    m.term()
  }

  async function perform(action: Action) {
    if (action.type === 'block') {
      const { entry } = action
      // The store is the authority: hits still in flight when a block was written (the gateways see it
      // a moment later) cross the threshold again, but the address is already blocked. One block, one
      // log line, one event; after a lift, the next flood blocks anew.
      const current = await blocklist.get(entry.address)
      if (current !== undefined && current.blockedAt !== entry.blockedAt) {
        log.debug({ address: entry.address, cause: action.cause }, 'address already blocked')
        return
      }
      // The same block again (a redelivered event): already stored; its event is published idempotently.
      if (current === undefined) await blocklist.block(entry)
      // The block's own event: its id is derived from the block, so a redelivery stores it once.
      const event: IpBlocked = {
        v: entry.v,
        id: `block-${entry.address}-${entry.blockedAt}`,
        ts: entry.blockedAt,
        source: consumers.subscriber,
        kind: 'ip.blocked',
        address: entry.address,
        reason: entry.reason,
        expiresAt: entry.expiresAt,
      }
      const ack = await js.publish(subjects.gatewayEvent('ip.blocked'), JSON.stringify(event), { msgID: event.id })
      // Logged with the event's first publish, so a redelivery or a replay does not say it twice.
      if (ack.duplicate) return
      stats.blocks++
      log.warn({ address: entry.address, expiresAt: new Date(entry.expiresAt).toISOString(), reason: entry.reason, cause: action.cause }, 'address blocked')
      return
    }
    const { alert } = action
    const h = natsHeaders()
    h.set(headers.msgId, `${alert.kind}-${alert.cause}`)
    nc.publish(subjects.alert(alert.kind), JSON.stringify(alert), { headers: h })
    stats.alerts++
    stats.alertsByKind[alert.kind] = (stats.alertsByKind[alert.kind] ?? 0) + 1
    log.warn({ alert: alert.kind, cause: alert.cause, details: alert.details }, alert.message)
  }

  return {
    stats: () => ({ ...stats, byKind: { ...stats.byKind }, alertsByKind: { ...stats.alertsByKind } }),
    started: () => startedPromise,
    async lag(timeoutMs = 1000) {
      if (closed || nc.isClosed()) return undefined
      try {
        const jsm = await nc.jetstreamManager({ timeout: timeoutMs })
        const info = await jsm.consumers.info(streams.gateway, consumers.subscriber)
        return { pending: info.num_pending, ackPending: info.num_ack_pending }
      } catch (err) {
        log.debug({ err }, 'consumer lag unavailable')
        return undefined
      }
    },
    async close() {
      closed = true
      stopRetry()
      // Bounded: on a connection that is already gone the close would wait for an answer forever.
      if (messages && !nc.isClosed()) {
        let timer: NodeJS.Timeout | undefined
        await Promise.race([messages.close(), new Promise((resolve) => (timer = setTimeout(resolve, 2000)))])
        clearTimeout(timer)
      }
    },
  }
}
