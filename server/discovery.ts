// Keeps the route table in step with the flows that are running: asks $SRV.INFO every interval and
// at once when a worker announces itself. A flow missing from MISSED_ROUNDS rounds in a row is
// dropped (404); until then a call to it gets the bus's "no responders", a fast 503. A path or flow
// name belongs to the first service that announced it (./ownership.ts); FLOW_SERVICES, when set,
// names the only services whose endpoints are routed at all.
import { ErrorCode, NatsError, RequestStrategy, type NatsConnection, type ServiceInfo } from 'nats'
import { Counter, type Registry } from 'prom-client'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { subjects } from '../lib/subjects.js'
import { RouteOwnership, type Claim, type Conflict } from './ownership.js'
import { buildRouteTable, createSchemaCompiler, routeFromEndpoint, type RouteTable } from './routes.js'

const MISSED_ROUNDS = 3
const MAX_ROUTES = 2000

export interface Discovery {
  table(): RouteTable
  /** One discovery round now; resolves when the table reflects it. */
  refresh(): Promise<void>
  /** True once a round has found at least one flow. */
  ready(): boolean
  /** Claims refused in the latest round: a path or flow name another service already serves. */
  conflicts(): readonly Conflict[]
  /**
   * Whether another service also answers on a flow's subject (seen in the latest round). NATS spreads
   * a queue group's requests over every member, so such a flow is not called at all while it lasts:
   * a request (a login's password, say) must not reach an impostor.
   */
  contested(subject: string): boolean
  close(): void
}

const MAX_NOTES = 1000

export function createDiscovery(
  nc: NatsConnection,
  config: Pick<Config, 'discoveryIntervalMs' | 'discoveryWaitMs' | 'flowServices'>,
  log: Logger,
  registry?: Registry,
): Discovery {
  const compile = createSchemaCompiler()
  const ownership = new RouteOwnership(MISSED_ROUNDS)
  const allowed = config.flowServices.length > 0 ? new Set(config.flowServices) : undefined
  let table = buildRouteTable([])
  let found = false
  let running: Promise<void> | undefined
  let closed = false
  let conflicts: Conflict[] = []
  let contested = new Set<string>()
  /** What was already logged (each flaw, skip or conflict once), bounded. */
  const noted = new Set<string>()
  const conflictCounter = registry
    ? new Counter({ name: 'flowgate_route_conflicts_total', help: 'Routes or flow names claimed by a second service and refused', labelNames: ['kind'] as const, registers: [registry] })
    : undefined

  const once = (key: string): boolean => {
    if (noted.has(key) || noted.size >= MAX_NOTES) return false
    noted.add(key)
    return true
  }

  /** Last round's claims by service and subject: an unchanged endpoint is not compiled again. */
  let lastClaims = new Map<string, Claim>()

  function collect(info: ServiceInfo, claims: Map<string, Claim>): void {
    if (allowed !== undefined && !allowed.has(info.name)) {
      if ((info.endpoints ?? []).length > 0 && once(`service ${info.name}`)) {
        log.warn({ service: info.name, id: info.id, allowed: [...allowed] }, 'service not in FLOW_SERVICES: its endpoints are not routed')
      }
      return
    }
    for (const ep of info.endpoints ?? []) {
      if (claims.size >= MAX_ROUTES) return
      const key = `${info.name} ${ep.subject}`
      if (claims.has(key)) continue // another instance of the same service
      const fingerprint = JSON.stringify(ep.metadata ?? {})
      const note = (reason: string, message: string) => {
        if (once(`${info.name}/${ep.name}: ${reason}`)) log.warn({ service: info.name, endpoint: ep.name, reason }, message)
      }
      const prev = lastClaims.get(key)
      const r = prev && prev.fingerprint === fingerprint ? prev.route : routeFromEndpoint(ep, compile, (reason) => note(reason, 'endpoint routed despite a flaw'))
      if (typeof r === 'string') {
        if (r !== 'not a flowgate flow') note(r, 'endpoint not routed')
        continue
      }
      claims.set(key, { route: r, owner: { service: info.name, id: info.id }, fingerprint })
    }
  }

  async function round(): Promise<void> {
    const claims = new Map<string, Claim>()
    const client = nc.services.client({ maxWait: config.discoveryWaitMs, strategy: RequestStrategy.Timer })
    try {
      for await (const info of (await client.info()) as AsyncIterable<ServiceInfo>) collect(info, claims)
    } catch (err) {
      // No service at all answers with "no responders": an empty round, not a failed one.
      if (!(err instanceof NatsError && err.code === ErrorCode.NoResponders)) throw err
    }
    lastClaims = claims
    const result = ownership.round([...claims.values()])
    conflicts = result.conflicts
    contested = new Set(conflicts.filter((c) => c.kind === 'flow').map((c) => c.claim))
    for (const c of result.conflicts) {
      if (!once(`conflict ${c.kind} ${c.claim} ${c.refused.service} ${c.refused.id}`)) continue
      conflictCounter?.inc({ kind: c.kind })
      log.error(
        { conflict: c.kind, claim: c.claim, kept: c.kept, refused: c.refused },
        `${c.refused.service} (${c.refused.id}) claims ${c.kind === 'flow' ? 'the flow' : 'the route'} ${c.claim}, already served by ${c.kept.service} (${c.kept.id}): refused`,
      )
    }
    for (const route of result.removed) log.info({ flow: route.flow }, 'flow gone: route removed')
    if (result.changed) {
      table = buildRouteTable(ownership.routes())
      log.info({ routes: table.routes.map((r) => `${r.method} ${r.path} -> ${r.subject}`) }, 'route table updated')
    }
    if (ownership.size > 0) found = true
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
    conflicts: () => conflicts,
    contested: (subject) => contested.size > 0 && contested.has(subject),
    close() {
      closed = true
      clearInterval(timer)
      announce.unsubscribe()
    },
  }
}
