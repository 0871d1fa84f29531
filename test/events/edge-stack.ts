// Gateways with the edge wired as server/main.ts wires it (stores, blocklist watcher, publisher),
// against real servers; plus stream helpers to count what reached JetStream.
import { connect, type ConnectionOptions, type NatsConnection } from 'nats'
import { Registry } from 'prom-client'
import { createTokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { streams } from '../../lib/subjects.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { createEdgeParts, type EdgeParts } from '../../server/edge/start.js'
import { buildGateway, type Gateway } from '../../server/gateway.js'

export interface EdgeGateway {
  gateway: Gateway
  nc: NatsConnection
  edge: EdgeParts & { close(): Promise<void> }
  stop(): Promise<void>
}

export async function startEdgeGateway(
  config: Config,
  log: Logger,
  opts: { natsOpts?: Partial<ConnectionOptions>; beforeBuild?: () => Promise<void> } = {},
): Promise<EdgeGateway> {
  const nc = await connect({ servers: config.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...opts.natsOpts })
  await opts.beforeBuild?.()
  const registry = new Registry()
  const edge = createEdgeParts(config, nc, log, registry)
  const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing: disabledTracing, registry, edge })
  await gateway.app.ready()
  return {
    gateway,
    nc,
    edge,
    async stop() {
      await gateway.close()
      await edge.close()
      await nc.close()
    },
  }
}

/** Messages stored per subject in the gateway stream (0 when absent). */
export async function streamCount(nc: NatsConnection, subject: string): Promise<number> {
  try {
    const jsm = await nc.jetstreamManager({ timeout: 2000 })
    const info = await jsm.streams.info(streams.gateway, { subjects_filter: subject })
    return (info.state.subjects as Record<string, number> | undefined)?.[subject] ?? 0
  } catch {
    return 0
  }
}

export async function waitFor<T>(what: string, fn: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 5000, everyMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (ok(v)) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(v)})`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
