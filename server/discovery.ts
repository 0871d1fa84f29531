// Keeps the route table in step with the flows that are running: asks $SRV.INFO every interval, and
// asks a worker that announces itself directly (by its instance id, answered in milliseconds rather
// than a whole round's wait). A flow missing from MISSED_ROUNDS rounds in a row is
// dropped (404); until then a call to it gets the bus's "no responders", a fast 503. A path or flow
// name belongs to the first service that announced it (./ownership.ts); FLOW_SERVICES, when set,
// names the only services whose endpoints are routed at all.
import { ErrorCode, NatsError, RequestStrategy, type NatsConnection, type ServiceInfo } from 'nats'
import { Counter, type Registry } from 'prom-client'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import type { Instance } from '../lib/shutdown.js'
import { subjects } from '../lib/subjects.js'
import { RouteOwnership, type Claim, type Conflict } from './ownership.js'
import { buildRouteTable, createSchemaCompiler, routeFromEndpoint, type RouteTable } from './routes.js'

const MISSED_ROUNDS = 3
const MAX_ROUTES = 2000

export interface Discovery {
  table(): RouteTable
  /** One discovery round now; resolves when the table reflects it. */
  refresh(): Promise<void>
  /**
   * Asks these instances only, by id, and adds what they serve at once: done when each answered
   * (or the round's wait passed), not after the whole wait. For a worker that announced itself, and
   * for the flows `flowgate start` runs beside this gateway.
   */
  learn(instances: readonly Instance[]): Promise<void>
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
/** Announced instances waiting to be asked; past this, one full round asks everybody instead. */
const MAX_PENDING = 64

/** One refused claim: what was claimed, and by which instance. */
const conflictKey = (c: Conflict) => `conflict ${c.kind} ${c.claim} ${c.refused.service} ${c.refused.id}`

/** A service name or instance id as the micro-service protocol allows them (a subject token each). */
const TOKEN = /^[A-Za-z0-9_-]{1,64}$/

/** The `{service, id}` a worker announces, or undefined for anything else on that subject. */
export function parseAnnounce(data: Uint8Array): Instance | undefined {
  let v: unknown
  try {
    v = JSON.parse(new TextDecoder().decode(data))
  } catch {
    return undefined
  }
  if (typeof v !== 'object' || v === null) return undefined
  const { service, id } = v as Record<string, unknown>
  return typeof service === 'string' && typeof id === 'string' && TOKEN.test(service) && TOKEN.test(id) ? { service, id } : undefined
}

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

  /** Every answer to one $SRV.INFO request, collected into claims. */
  async function gather(infos: Promise<AsyncIterable<ServiceInfo>>, claims: Map<string, Claim>): Promise<void> {
    try {
      for await (const info of await infos) collect(info, claims)
    } catch (err) {
      // No service at all answers with "no responders": an empty round, not a failed one.
      if (!(err instanceof NatsError && err.code === ErrorCode.NoResponders)) throw err
    }
  }

  async function round(): Promise<void> {
    const claims = new Map<string, Claim>()
    const client = nc.services.client({ maxWait: config.discoveryWaitMs, strategy: RequestStrategy.Timer })
    await gather(client.info() as Promise<AsyncIterable<ServiceInfo>>, claims)
    lastClaims = claims
    apply(claims, false)
  }

  async function ask(instances: readonly Instance[]): Promise<void> {
    const claims = new Map<string, Claim>()
    // Each instance answers its own subject once: the request ends with that answer.
    const client = nc.services.client({ maxWait: config.discoveryWaitMs, strategy: RequestStrategy.Count, maxMessages: 1 })
    await Promise.all(instances.map((i) => gather(client.info(i.service, i.id) as Promise<AsyncIterable<ServiceInfo>>, claims)))
    for (const [key, claim] of claims) if (lastClaims.size < MAX_ROUTES) lastClaims.set(key, claim)
    apply(claims, true)
  }

  function apply(claims: Map<string, Claim>, partial: boolean): void {
    const result = ownership.round([...claims.values()], partial)
    // A partial round adds what it saw (an impostor that just announced is contested at once); the
    // next full round says what still holds.
    conflicts = partial ? [...new Map([...conflicts, ...result.conflicts].map((c) => [conflictKey(c), c])).values()] : result.conflicts
    contested = new Set(conflicts.filter((c) => c.kind === 'flow').map((c) => c.claim))
    for (const c of result.conflicts) {
      if (!once(conflictKey(c))) continue
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

  /** Announced instances not asked yet, by service and id; asked one batch at a time. */
  const pending = new Map<string, Instance>()
  let asking: Promise<void> | undefined
  function learn(instances: readonly Instance[]): Promise<void> {
    for (const i of instances) if (pending.size < MAX_PENDING) pending.set(`${i.service}.${i.id}`, i)
    if (pending.size >= MAX_PENDING) {
      // A flood of announcements (or a peer faking them) costs one full round, not one request each.
      pending.clear()
      return refresh()
    }
    asking ??= (async () => {
      while (pending.size > 0 && !closed) {
        const batch = [...pending.values()]
        pending.clear()
        await ask(batch).catch((err: unknown) => log.warn({ err }, 'asking announced flows failed'))
      }
    })().finally(() => (asking = undefined))
    return asking
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
  // A worker that says who it is is asked directly; an announcement without a valid instance (an
  // older worker) asks everybody.
  const announce = nc.subscribe(subjects.discoveryAnnounce, {
    callback: (_err, msg) => {
      if (closed) return
      const instance = parseAnnounce(msg.data)
      void (instance ? learn([instance]) : refresh())
    },
  })

  return {
    table: () => table,
    refresh,
    learn,
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
