// The gateway process: listen, connect, build; close in reverse order.
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
import { createGatewayHttpServer, type GatewayHttpServer } from './http-server.js'

export async function start(config: Config, log: Logger): Promise<Running> {
  const closers: Closer[] = []
  // Listening comes first: until NATS answers, the server says so (503 envelope, /ready false).
  const http = createGatewayHttpServer({ requestTimeoutMs: config.httpRequestTimeoutMs, log })
  await http.listen(config.port, config.host)
  // Closed by the gateway once it is built; here only when the start fails before that.
  closers.push({ name: 'http', close: () => http.close() })
  try {
    return await startOn(http, closers, config, log)
  } catch (err) {
    await closeAll(closers, config.shutdownTimeoutMs, log)
    throw err
  }
}

async function startOn(http: GatewayHttpServer, closers: Closer[], config: Config, log: Logger): Promise<Running> {
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
  closers.push({ name: 'gateway', close: () => gateway.close() })
  await gateway.discovery.refresh()
  await gateway.app.ready()
  http.activate()
  const { address, port } = http.server.address() as AddressInfo
  return {
    describe: `gateway: http://${address}:${port} (${gateway.discovery.table().routes.length} flow routes discovered)`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}
