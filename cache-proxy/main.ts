// Entry point of the cache proxy: load the policy, build the proxy, listen. Signals and exit codes
// belong to the CLI (cli/main.ts), which calls start().
import { Registry } from 'prom-client'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { serveMetrics, type MetricsServer } from '../lib/metrics.js'
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
  let metrics: MetricsServer | undefined
  const policy = loadPolicy(config.cachePolicyFile, plog, {
    intervalMs: opts.policyReloadIntervalMs,
    onChange: (p) => proxy?.applyPolicy(p),
  })
  try {
    proxy = createCacheProxy(config, { log: plog, policy: policy.current })
    const registry = opts.registry ?? new Registry()
    registerCacheMetrics(registry, proxy)
    const address = await proxy.listen(config.cacheProxyHost, config.cacheProxyPort)
    if (config.cacheProxyMetricsPort > 0) metrics = await serveMetrics(registry, config.cacheProxyHost, config.cacheProxyMetricsPort, plog)
    plog.info({ address, redis: config.redisUrl.replace(/\/\/[^@]*@/, '//***@') }, 'cache proxy listening')
    const running = proxy
    return {
      address,
      describe: `cache proxy on redis://${address.host}:${address.port} → ${config.redisUrl.replace(/\/\/[^@]*@/, '//***@')}`,
      proxy: running,
      close() {
        policy.close()
        const closers = [{ name: 'cache-proxy', close: () => running.close() }]
        if (metrics) closers.push({ name: 'metrics', close: () => metrics!.close() })
        return closeAll(closers, config.shutdownTimeoutMs, plog)
      },
    }
  } catch (err) {
    await metrics?.close()
    policy.close()
    await proxy?.close()
    throw err
  }
}
