// Keeps the route table in step with the flows that are running: asks $SRV.INFO every interval and
// at once when a worker announces itself. A flow missing from MISSED_ROUNDS rounds in a row is
// dropped (404); until then a call to it gets the bus's "no responders", a fast 503.
import { ErrorCode, NatsError, RequestStrategy, type NatsConnection, type ServiceInfo } from 'nats'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { subjects } from '../lib/subjects.js'
import { buildRouteTable, createSchemaCompiler, routeFromEndpoint, type FlowRoute, type RouteTable } from './routes.js'

const MISSED_ROUNDS = 3
const MAX_ROUTES = 2000

export interface Discovery {
  table(): RouteTable
  /** One discovery round now; resolves when the table reflects it. */
  refresh(): Promise<void>
  /** True once a round has found at least one flow. */
  ready(): boolean
  close(): void
}

export function createDiscovery(
  nc: NatsConnection,
  config: Pick<Config, 'discoveryIntervalMs' | 'discoveryWaitMs'>,
  log: Logger,
): Discovery {
  const compile = createSchemaCompiler()
  const known = new Map<string, { route: FlowRoute; missed: number; fingerprint: string }>()
  let table = buildRouteTable([])
  let found = false
  let running: Promise<void> | undefined
  let closed = false
  const skipped = new Set<string>()

  type Seen = Map<string, { route: FlowRoute; fingerprint: string }>

  function collect(info: ServiceInfo, seen: Seen): void {
    for (const ep of info.endpoints ?? []) {
      const key = ep.subject
      if (seen.has(key) || seen.size >= MAX_ROUTES) continue
      const fingerprint = JSON.stringify(ep.metadata ?? {})
      const prev = known.get(key)
      const note = (reason: string, message: string) => {
        const key = `${info.name}/${ep.name}: ${reason}`
        if (skipped.has(key) || skipped.size >= 1000) return
        skipped.add(key)
        log.warn({ service: info.name, endpoint: ep.name, reason }, message)
      }
      const r = prev && prev.fingerprint === fingerprint ? prev.route : routeFromEndpoint(ep, compile, (reason) => note(reason, 'endpoint routed despite a flaw'))
      if (typeof r === 'string') {
        if (r !== 'not a flowgate flow') note(r, 'endpoint not routed')
        continue
      }
      seen.set(key, { route: r, fingerprint })
    }
  }

  async function round(): Promise<void> {
    const seen: Seen = new Map()
    const client = nc.services.client({ maxWait: config.discoveryWaitMs, strategy: RequestStrategy.Timer })
    try {
      for await (const info of (await client.info()) as AsyncIterable<ServiceInfo>) collect(info, seen)
    } catch (err) {
      // No service at all answers with "no responders": an empty round, not a failed one.
      if (!(err instanceof NatsError && err.code === ErrorCode.NoResponders)) throw err
    }
    let changed = false
    for (const [key, entry] of seen) {
      const prev = known.get(key)
      if (!prev || prev.fingerprint !== entry.fingerprint) changed = true
      known.set(key, { ...entry, missed: 0 })
    }
    for (const [key, entry] of known) {
      if (seen.has(key)) continue
      entry.missed++
      if (entry.missed >= MISSED_ROUNDS) {
        known.delete(key)
        changed = true
        log.info({ flow: entry.route.flow }, 'flow gone: route removed')
      }
    }
    if (changed) {
      const routes = [...known.values()].map((e) => e.route).sort((a, b) => a.flow.localeCompare(b.flow))
      table = buildRouteTable(routes)
      log.info({ routes: table.routes.map((r) => `${r.method} ${r.path} -> ${r.subject}`) }, 'route table updated')
    }
    if (known.size > 0) found = true
  }

  let followUp: Promise<void> | undefined
  function refresh(): Promise<void> {
    // Rounds never overlap. A refresh asked for during one gets one more round after it (the
    // running round may have asked before the new worker was there); further asks share that one.
    if (running) {
      followUp ??= running.then(() => {
        followUp = undefined
        return refresh()
      })
      return followUp
    }
    running = round()
      .catch((err: unknown) => log.warn({ err }, 'discovery round failed'))
      .finally(() => (running = undefined))
    return running
  }

  const timer = setInterval(() => void refresh(), config.discoveryIntervalMs)
  timer.unref()
  const announce = nc.subscribe(subjects.discoveryAnnounce, { callback: () => void (closed || refresh()) })

  return {
    table: () => table,
    refresh,
    ready: () => found,
    close() {
      closed = true
      clearInterval(timer)
      announce.unsubscribe()
    },
  }
}
