// Upstreams with `discover: { consul: <service> }` take their targets from Consul's health API
// through the `consul` client: passing instances only, followed with blocking queries (the client's
// Watch sends the last X-Consul-Index back and Consul answers when the set changes or `wait`
// passes), with backoff when the agent is away. The instances are capped per upstream.
import Consul from 'consul'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { throttledWarning } from '../../lib/throttle.js'
import { targetUrl } from './services-file.js'
import type { TargetSpec } from './spec.js'
import { MAX_DISCOVERED, type Upstreams } from './upstreams.js'

/** One entry of GET /v1/health/service/<name> (the parts used here). */
interface HealthEntry {
  Node?: { Address?: string }
  Service?: { Address?: string; Port?: number; Weights?: { Passing?: number } }
}

type Watch = ReturnType<InstanceType<typeof Consul>['watch']>

/** The passing instances of one answer as targets (malformed entries skipped). */
export function targetsOf(entries: unknown, scheme: 'http' | 'https'): TargetSpec[] {
  if (!Array.isArray(entries)) return []
  const out: TargetSpec[] = []
  for (const e of entries as HealthEntry[]) {
    const host = e?.Service?.Address || e?.Node?.Address
    const port = e?.Service?.Port
    if (typeof host !== 'string' || !Number.isInteger(port) || port! < 1 || port! > 65535) continue
    const url = targetUrl(`${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`)
    if (typeof url !== 'string' || out.some((t) => t.url === url)) continue
    const w = e.Service?.Weights?.Passing
    out.push({ url, weight: Number.isInteger(w) && w! >= 1 && w! <= 1000 ? w! : 1 })
    if (out.length >= MAX_DISCOVERED) break
  }
  return out.sort((a, b) => a.url.localeCompare(b.url))
}

export function watchConsul(config: Pick<Config, 'consulUrl' | 'consulToken'>, upstreams: Upstreams, log: Logger, waitSec = 30): { close(): void } {
  const url = new URL(config.consulUrl!)
  const consul = new Consul({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 8500)),
    secure: url.protocol === 'https:',
    ...(config.consulToken ? { defaults: { token: config.consulToken } } : {}),
  })
  const watches = new Map<string, Watch>()
  const warn = throttledWarning(log, 10_000)

  function sync() {
    const wanted = upstreams.followed('consul')
    for (const [service, w] of watches) {
      if (wanted.has(service)) continue
      w.end()
      watches.delete(service)
    }
    for (const [service, scheme] of wanted) {
      if (watches.has(service)) continue
      const w = consul.watch({
        method: consul.health.service,
        options: { service, passing: true, wait: `${waitSec}s` } as unknown as Record<string, string>,
        backoffFactor: 100,
        backoffMax: 10_000,
      })
      w.on('change', (data: unknown) => {
        const targets = targetsOf(data, scheme)
        log.info({ service, targets: targets.map((t) => t.url) }, 'consul: passing instances changed')
        upstreams.discovered('consul', service, targets)
      })
      w.on('error', (err: Error) => warn({ service, err: err.message }, 'consul: watch failed; retrying with backoff'))
      watches.set(service, w)
    }
  }

  sync()
  upstreams.onSpecChange(sync)
  return {
    close() {
      for (const w of watches.values()) w.end()
      watches.clear()
      consul.destroy()
    },
  }
}
