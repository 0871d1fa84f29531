// The gateway process: listen, connect, build; close in reverse order.
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { createTokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { closeAll, type Closer, type Running } from '../lib/shutdown.js'
import { collectProcessMetrics, type Host } from '../lib/metrics.js'
import { createTracing, registerTracingMetrics } from '../lib/telemetry.js'
import { createEdgeParts } from './edge/start.js'
import { buildGateway } from './gateway.js'
import { createGatewayHttpServer, type GatewayHttpServer } from './http-server.js'

export async function start(config: Config, log: Logger, host: Host = {}): Promise<Running> {
  const closers: Closer[] = []
  // Listening comes first: until NATS answers, the server says so (503 envelope, /ready false).
  const http = createGatewayHttpServer({ requestTimeoutMs: config.httpRequestTimeoutMs, log })
  await http.listen(config.port, config.host)
  // Closed by the gateway once it is built; here only when the start fails before that.
  closers.push({ name: 'http', close: () => http.close() })
  try {
    return await startOn(http, closers, config, log, host)
  } catch (err) {
    await closeAll(closers, config.shutdownTimeoutMs, log)
    throw err
  }
}

async function startOn(http: GatewayHttpServer, closers: Closer[], config: Config, log: Logger, host: Host): Promise<Running> {
  let tracing = host.tracing
  if (!tracing) {
    // Its spans' parents are passed by id: no context manager needed (lib/telemetry.ts, activeContext).
    const own = await createTracing(config, 'gateway', { activeContext: false })
    closers.push({ name: 'telemetry', close: () => own.shutdown() })
    tracing = own
  }
  const nc = await connectNats(config, log, 'gateway')
  closers.push({ name: 'nats', close: () => nc.drain() })
  // Under `flowgate start` the host's registry holds every part's metrics: /metrics here serves them all.
  let registry = host.registry
  if (!registry) {
    registry = new Registry()
    registerTracingMetrics(registry, tracing)
  }
  collectProcessMetrics(registry, 'flowgate_gateway_')
  const edge = createEdgeParts(config, nc, log, registry)
  closers.push({ name: 'edge', close: () => edge.close() })
  const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing, registry, edge, http })
  // The server stops taking requests and lets those in flight finish before the gateway lets go of NATS.
  closers.push({ name: 'gateway', close: () => gateway.close() })
  // Under `flowgate start`, the flows started beside this gateway are asked directly (milliseconds),
  // and a full round finds any other worker in the background; run on its own, one full round first.
  const beside = (await host.partsStarted) ?? []
  if (beside.length > 0) {
    await gateway.discovery.learn(beside)
    void gateway.discovery.refresh()
  } else await gateway.discovery.refresh()
  // A proxy route taking a flow's requests is a start-up error, not a silent winner.
  gateway.upstreams.checkFlows(gateway.discovery.table())
  await gateway.app.ready()
  http.activate()
  const { address, port } = http.server.address() as AddressInfo
  const proxies = gateway.upstreams.table().routes.length
  // A wildcard address is reached through localhost (the banner's curl lines).
  const url = `http://${address === '0.0.0.0' || address === '::' ? 'localhost' : address.includes(':') ? `[${address}]` : address}:${port}`
  return {
    url,
    describe: `gateway: http://${address}:${port} (${gateway.discovery.table().routes.length} flow routes discovered, ${proxies} proxy route${proxies === 1 ? '' : 's'})`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}
