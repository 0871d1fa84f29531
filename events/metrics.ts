// The subscriber's Prometheus metrics, read from its counters at scrape time (nothing per event).
// The consumer lag is asked of the server at scrape time, with a short bound: a scrape while NATS is
// away or the process is stopping still answers, with the last lag known.
import { Counter, Gauge, type Registry } from 'prom-client'
import { EVENT_KINDS } from '../schemas/events.js'
import type { ConsumerLag, Subscriber, SubscriberStats } from './subscriber.js'

const ALERT_KINDS = ['circuit_opened', 'latency_spike', 'ip_blocked'] as const
const LAG_TIMEOUT_MS = 1000

export function registerSubscriberMetrics(registry: Registry, subscriber: Subscriber): void {
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[], read: (s: SubscriberStats, set: (labels: Record<L, string>, n: number) => void) => void) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset()
        read(subscriber.stats(), (labels, n) => this.inc(labels as never, n))
      },
    })
  counter('flowgate_subscriber_events_processed_total', 'gateway events handled and acked, by kind', ['kind'], (s, set) => {
    for (const kind of EVENT_KINDS) set({ kind }, s.byKind[kind])
  })
  counter('flowgate_subscriber_events_terminated_total', 'gateway events dropped as unreadable', [], (s, set) => set({}, s.terminated))
  counter('flowgate_subscriber_events_failed_total', 'gateway events whose actions failed (redelivered)', [], (s, set) => set({}, s.failed))
  counter('flowgate_subscriber_blocks_total', 'addresses blocked by the subscriber', [], (s, set) => set({}, s.blocks))
  counter('flowgate_subscriber_alerts_total', 'alerts raised, by kind', ['kind'], (s, set) => {
    for (const kind of ALERT_KINDS) set({ kind }, s.alertsByKind[kind] ?? 0)
  })

  let last: ConsumerLag = { pending: 0, ackPending: 0 }
  let lagKnown = 0
  const refreshLag = async () => {
    const lag = await subscriber.lag(LAG_TIMEOUT_MS)
    lagKnown = lag ? 1 : 0
    if (lag) last = lag
  }
  // One server round trip per scrape, shared by the three gauges (prom-client collects them in turn).
  let inFlight: Promise<void> | undefined
  const lagOnce = () => {
    inFlight ??= refreshLag().finally(() => setTimeout(() => (inFlight = undefined), 100).unref())
    return inFlight
  }
  new Gauge({
    name: 'flowgate_subscriber_consumer_lag',
    help: 'gateway events in the stream not yet delivered to the subscriber (last known)',
    registers: [registry],
    async collect() {
      await lagOnce()
      this.set(last.pending)
    },
  })
  new Gauge({
    name: 'flowgate_subscriber_consumer_ack_pending',
    help: 'gateway events delivered to the subscriber and not yet acked (last known)',
    registers: [registry],
    async collect() {
      await lagOnce()
      this.set(last.ackPending)
    },
  })
  new Gauge({
    name: 'flowgate_subscriber_consumer_lag_known',
    help: '1 when the last scrape could read the consumer lag from the server',
    registers: [registry],
    async collect() {
      await lagOnce()
      this.set(lagKnown)
    },
  })
}
