// The discovery sources besides the services file, each on only when configured: the NATS KV
// registry (SERVICES_KV_ENABLED) and Consul (CONSUL_URL).
import type { NatsConnection } from 'nats'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { watchConsul } from './discovery-consul.js'
import { watchServiceRegistry } from './discovery-kv.js'
import type { Upstreams } from './upstreams.js'

export function startDiscoverySources(config: Pick<Config, 'servicesKvEnabled' | 'consulUrl' | 'consulToken'>, nc: NatsConnection, upstreams: Upstreams, log: Logger): { close(): void } {
  const kv = config.servicesKvEnabled ? watchServiceRegistry(nc, upstreams, log) : undefined
  const consul = config.consulUrl ? watchConsul(config, upstreams, log) : undefined
  return {
    close() {
      kv?.close()
      consul?.close()
    },
  }
}
