// The gateway process: listen, connect, build; close in reverse order.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { createTokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { closeAll, type Closer, type Running } from '../lib/shutdown.js'
import { createTracing } from '../lib/telemetry.js'
import { createEdgeParts } from './edge/start.js'
import { buildGateway } from './gateway.js'
import { createGatewayHttpServer } from './http-server.js'

export async function start(config: Config, log: Logger): Promise<Running> {
  const closers: Closer[] = []
  // Listening comes first: until NATS answers, the server says so (503 envelope, /ready false).
  const http = createGatewayHttpServer()
  await new Promise<void>((resolve, reject) => {
    http.server.once('error', reject)
    http.server.listen(config.port, config.host, () => resolve())
  })
  closers.push({ name: 'http', close: () => closeServer(http.server) })
  const tracing = await createTracing(config, 'gateway')
  closers.push({ name: 'telemetry', close: () => tracing.shutdown() })
  const nc = await connectNats(config, log, 'flowgate-gateway')
  closers.push({ name: 'nats', close: () => nc.drain() })
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'flowgate_gateway_' })
  const edge = createEdgeParts(config, nc, log, registry)
  closers.push({ name: 'edge', close: () => edge.close() })
  const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing, registry, edge, http })
  // The server stops taking requests and lets those in flight finish before the gateway lets go of NATS.
  closers.push({
    name: 'gateway',
    close: async () => {
      await closeServer(http.server)
      await gateway.close()
    },
  })
  await gateway.discovery.refresh()
  await gateway.app.ready()
  http.activate()
  const { address, port } = http.server.address() as AddressInfo
  return {
    describe: `gateway: http://${address}:${port} (${gateway.discovery.table().routes.length} flow routes discovered)`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}

/** Stops accepting, lets open requests finish, and closes idle keep-alive connections as they go idle. */
function closeServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve()
  const sweep = setInterval(() => server.closeIdleConnections(), 100)
  return new Promise<void>((resolve) => server.close(() => resolve())).finally(() => clearInterval(sweep))
}
