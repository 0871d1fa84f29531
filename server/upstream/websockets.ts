// WebSocket proxying wired into the gateway in one call: the upgrade guard hook (register right
// after the edge), the socket registry and its metrics, the upgrade handler for proxy routes, and
// the `upgrade` listener on the server the gateway serves on.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Registry } from 'prom-client'
import type { TokenService } from '../../lib/auth.js'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import type { Tracing } from '../../lib/telemetry.js'
import type { EventPublisher } from '../events/publisher.js'
import type { GatewayHttpServer } from '../http-server.js'
import type { HttpMetrics } from '../metrics.js'
import type { RecentRequests } from '../recent.js'
import type { Target } from '../resolver.js'
import type { UpstreamMetrics } from './metrics.js'
import type { ProxyHandler } from './proxy.js'
import { createWebSocketMetrics } from './ws-metrics.js'
import { createWebSocketProxyHandler } from './ws-proxy.js'
import { WebSocketRegistry } from './ws-sockets.js'
import { createUpgradeListener, registerUpgradeGuard } from './ws-upgrade.js'

/** How long shutdown waits for open sockets to close after their 1001 (each side is cut after a grace anyway). */
const SHUTDOWN_WAIT_MS = 2000

export interface WebSockets {
  readonly registry: WebSocketRegistry
  /** Serves a WebSocket upgrade on a proxy route. */
  readonly handler: ProxyHandler
  /** Takes upgrades: on the gateway's own server (once it is activated), else on Fastify's. */
  listen(http: GatewayHttpServer | undefined): void
  /** Refuses new upgrades, closes every open socket with 1001 on both sides. */
  close(): Promise<void>
}

export interface WebSocketsDeps {
  log: Logger
  tokens: TokenService
  tracing: Tracing
  registry: Registry
  events: EventPublisher | undefined
  recent: RecentRequests | undefined
  http: HttpMetrics
  upstreamMetrics: UpstreamMetrics
  securityHeaderNames: ReadonlySet<string>
  resolve: (request: FastifyRequest) => Target | undefined
}

export function createWebSockets(app: FastifyInstance, config: Config, deps: WebSocketsDeps): WebSockets {
  const sockets = new WebSocketRegistry({ maxSockets: config.wsMaxSockets, maxPerClient: config.wsMaxSocketsPerClient })
  registerUpgradeGuard(app, deps.resolve)
  const handler = createWebSocketProxyHandler({
    tokens: deps.tokens,
    tracing: deps.tracing,
    log: deps.log,
    sockets,
    metrics: createWebSocketMetrics(deps.registry, sockets),
    upstreamMetrics: deps.upstreamMetrics,
    http: deps.http,
    events: deps.events,
    recent: deps.recent,
    securityHeaderNames: deps.securityHeaderNames,
    idleTimeoutMs: config.wsIdleTimeoutMs,
    maxMessageBytes: config.wsMaxMessageBytes,
  })
  return {
    registry: sockets,
    handler,
    listen(http) {
      const onUpgrade = createUpgradeListener(app, config, deps.log)
      if (http !== undefined) http.prepareUpgrade(onUpgrade)
      else app.server.on('upgrade', onUpgrade)
    },
    close: () => sockets.close(SHUTDOWN_WAIT_MS),
  }
}
