// The gateway process: connect, build, listen; close in reverse order.
import { Registry, collectDefaultMetrics } from 'prom-client'
import { createTokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { closeAll, type Closer, type Running } from '../lib/shutdown.js'
import { createTracing } from '../lib/telemetry.js'
import { createEdgeParts } from './edge/start.js'
import { buildGateway } from './gateway.js'

export async function start(config: Config, log: Logger): Promise<Running> {
  const closers: Closer[] = []
  const tracing = await createTracing(config, 'gateway')
  closers.push({ name: 'telemetry', close: () => tracing.shutdown() })
  const nc = await connectNats(config, log, 'flowgate-gateway')
  closers.push({ name: 'nats', close: () => nc.drain() })
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'flowgate_gateway_' })
  const edge = createEdgeParts(config, nc, log, registry)
  closers.push({ name: 'edge', close: () => edge.close() })
  const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing, registry, edge })
  closers.push({ name: 'gateway', close: () => gateway.close() })
  await gateway.discovery.refresh()
  const address = await gateway.app.listen({ port: config.port, host: config.host })
  return {
    describe: `gateway: ${address} (${gateway.discovery.table().routes.length} flow routes discovered)`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}
