// Entry point of the cache proxy: load the policy, build the proxy, listen. Signals and exit codes
// belong to the CLI (cli/main.ts), which calls start().
import { createServer, type Server } from 'node:http'
import { Registry } from 'prom-client'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { closeAll, type Running } from '../lib/shutdown.js'
import { registerCacheMetrics } from './metrics.js'
import { loadPolicy } from './policy.js'
import { createCacheProxy, type CacheProxy } from './proxy.js'

export interface RunningCacheProxy extends Running {
  address: { host: string; port: number }
  proxy: CacheProxy
}

/** Starts the RESP cache proxy on config.cacheProxyHost:cacheProxyPort in front of config.redisUrl. */
export async function start(
  config: Config,
  log: Logger,
  opts: { registry?: Registry; policyReloadIntervalMs?: number } = {},
): Promise<RunningCacheProxy> {
  const plog = log.child({ component: 'cache-proxy' })
  let proxy: CacheProxy | undefined
  let metrics: Server | undefined
  const policy = loadPolicy(config.cachePolicyFile, plog, {
    intervalMs: opts.policyReloadIntervalMs,
    onChange: (p) => proxy?.applyPolicy(p),
  })
  try {
    proxy = createCacheProxy(config, { log: plog, policy: policy.current })
    const registry = opts.registry ?? new Registry()
    registerCacheMetrics(registry, proxy)
    const address = await proxy.listen(config.cacheProxyHost, config.cacheProxyPort)
    if (config.cacheProxyMetricsPort > 0) metrics = await serveMetrics(registry, config.cacheProxyHost, config.cacheProxyMetricsPort)
    plog.info({ address, redis: config.redisUrl.replace(/\/\/[^@]*@/, '//***@') }, 'cache proxy listening')
    const running = proxy
    return {
      address,
      describe: `cache proxy on redis://${address.host}:${address.port} → ${config.redisUrl.replace(/\/\/[^@]*@/, '//***@')}`,
      proxy: running,
      close() {
        policy.close()
        const closers = [{ name: 'cache-proxy', close: () => running.close() }]
        if (metrics) closers.push({ name: 'metrics', close: () => new Promise<void>((r) => metrics!.close(() => r())) })
        return closeAll(closers, config.shutdownTimeoutMs, plog)
      },
    }
  } catch (err) {
    metrics?.close()
    policy.close()
    await proxy?.close()
    throw err
  }
}

/** GET /metrics for a proxy run on its own (the gateway serves its own registry). */
function serveMetrics(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404).end()
      return
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    )
  })
  server.requestTimeout = 5000
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}
