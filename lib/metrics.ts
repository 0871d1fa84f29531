// What every process shares for Prometheus: a label guard that keeps a label's value set bounded,
// the /metrics endpoint of a process run on its own, and what a host process lends the parts it runs.
import { createServer, type Server } from 'node:http'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { Logger } from './logger.js'
import type { Instance } from './shutdown.js'
import type { Tracing } from './telemetry.js'

/** prom-client's registry, for a host that loads this module on demand (the CLI). */
export { Registry }

/** What `flowgate start` lends each part it runs in one process: one tracer, one registry (one scrape target). */
export interface Host {
  tracing?: Tracing
  /** When given, the part registers its metrics here and serves none itself (the gateway serves this one). */
  registry?: Registry
  /**
   * Resolves when the parts this one starts beside in the same process are up, with the bus
   * instances they serve (under `flowgate start`, the gateway asks the flows started beside it
   * directly instead of waiting out a whole discovery round).
   */
  partsStarted?: Promise<readonly Instance[]>
}

/** The value a label takes once `max` distinct values were seen. */
export const OTHER = 'other'

/**
 * A label value guard: the first `max` distinct values pass, later new ones become `other`. For
 * labels whose values come from outside the process's own code (flow names announced on the bus,
 * step names chosen by flows).
 */
export function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>()
  return (value) => {
    if (seen.has(value)) return value
    if (seen.size >= max) return OTHER
    seen.add(value)
    return value
  }
}

// prom-client's default set names three gauges with `_total`, the suffix of counters: promtool
// refuses them. Their values are in nodejs_active_handles / _requests / _resources (by type) anyway.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/** The process's CPU, memory, event loop and GC metrics under `prefix`, named as Prometheus expects. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix })
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(`${prefix}${name}`)
}

/**
 * A gauge read at scrape time from a process's own state: nothing is done per event, and a value
 * kept elsewhere (a queue's size, a pool's count) is never copied into prom-client as it changes.
 */
export function scrapedGauge(registry: Registry, name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read())
    },
  })
}

/** A counter read at scrape time from a running total the process keeps anyway (never decreasing). */
export function scrapedCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset()
      this.inc(read())
    },
  })
}

export interface MetricsServer {
  readonly port: number
  close(): Promise<void>
}

/** GET /metrics on its own port (anything else 404); a scrape that fails answers 500, never hangs past 5 s. */
export async function serveMetrics(registry: Registry, host: string, port: number, log: Logger): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        log.warn({ err }, 'metrics scrape failed')
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n')
      },
    )
  })
  server.requestTimeout = 5000
  server.headersTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeIdleConnections()
      }),
  }
}
