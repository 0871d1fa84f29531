// The subscriber process: connect, consume, close in reverse order.
import { Registry } from 'prom-client'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { collectProcessMetrics, serveMetrics, type Host } from '../lib/metrics.js'
import { connectNats } from '../lib/nats.js'
import { closeAll, type Closer, type Running } from '../lib/shutdown.js'
import { consumers, streams } from '../lib/subjects.js'
import { registerSubscriberMetrics } from './metrics.js'
import { createSubscriber } from './subscriber.js'

export async function start(config: Config, log: Logger, host: Host = {}): Promise<Running> {
  const closers: Closer[] = []
  const nc = await connectNats(config, log, 'subscriber')
  closers.push({ name: 'nats', close: () => nc.drain() })
  const subscriber = createSubscriber(nc, config, { log })
  closers.push({ name: 'subscriber', close: () => subscriber.close() })
  const registry = host.registry ?? new Registry()
  if (!host.registry) collectProcessMetrics(registry, 'flowgate_subscriber_')
  registerSubscriberMetrics(registry, subscriber)
  let metricsAt = ''
  if (!host.registry && config.subscriberMetricsPort > 0) {
    const metrics = await serveMetrics(registry, config.metricsHost, config.subscriberMetricsPort, log).catch(async (err: unknown) => {
      await closeAll(closers, config.shutdownTimeoutMs, log)
      throw err
    })
    // Closed last: a scrape during shutdown still gets an answer.
    closers.unshift({ name: 'metrics', close: () => metrics.close() })
    metricsAt = `, metrics on http://${config.metricsHost}:${metrics.port}/metrics`
  }
  return {
    describe: `subscriber: durable consumer ${consumers.subscriber} on ${streams.gateway}${metricsAt}`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}
