// Creates the edge's parts from config for the gateway process: the rate-limit store, the
// blocklist watcher and the event publisher, each left undefined when its feature is off.
import type { NatsConnection } from 'nats'
import type { Registry } from 'prom-client'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { createEventPublisher } from '../events/publisher.js'
import { createBlocklist } from './blocklist.js'
import type { EdgeDeps } from './index.js'
import { createMemoryStore } from './memory-store.js'
import { createRedisStore } from './redis-store.js'
import { parseRouteLimits } from './rate-limit.js'

export type EdgeParts = Pick<EdgeDeps, 'store' | 'blocklist' | 'events'>

/** The edge parts, and how to close them (events flushed last so the final requests' events go out). */
export function createEdgeParts(config: Config, nc: NatsConnection, log: Logger, registry: Registry): EdgeParts & { close(): Promise<void> } {
  parseRouteLimits(config.rateLimitRoutes) // a bad rule stops the start, not the first request
  const store = !config.rateLimitEnabled
    ? undefined
    : config.rateLimitStore === 'redis'
      ? createRedisStore({ url: config.redisUrl, timeoutMs: config.rateLimitRedisTimeoutMs, log, registry })
      : createMemoryStore({ maxKeys: config.rateLimitMaxKeys })
  const blocklist = config.blocklistEnabled ? createBlocklist(nc, config, log) : undefined
  const events = config.eventsEnabled ? createEventPublisher(nc, config, { log, registry }) : undefined
  return {
    store,
    blocklist,
    events,
    async close() {
      await store?.close()
      await blocklist?.close()
      await events?.close()
    },
  }
}
