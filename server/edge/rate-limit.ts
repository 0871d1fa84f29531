// The edge guard: the first thing a request meets after it gets its trace id. It refuses blocked
// addresses (403 IP_BLOCKED) and takes a token from the caller's bucket (429 RATE_LIMITED with
// Retry-After), before the body is read, before auth and before the flow lookup. Limits are
// resolved once at start; a request pays one address normalisation, at most one route lookup
// (only when per-route limits exist) and one store call.
import FindMyWay from 'find-my-way'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import proxyAddr from '@fastify/proxy-addr'
import type { TokenService } from '../../lib/auth.js'
import { ConfigError, type Config } from '../../lib/config.js'
import { errors, type FlowgateError } from '../../lib/errors.js'
import type { EventPublisher } from '../events/publisher.js'
import type { BlockEntry } from '../../schemas/events.js'
import type { Blocklist } from './blocklist.js'
import { addressKey } from '../../lib/address.js'
import { callerOf } from '../caller.js'
import { labelOf } from '../hooks.js'
import type { Target } from '../resolver.js'
import type { Decision, Limit, RateLimitStore } from './token-bucket.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The client address (IPv6 as its /64), TRUST_PROXY honoured. */
    clientAddress: string
    /** The rate-limit key: the address, or `sub:<subject>` for a verified token. */
    clientKey: string
  }
}

/** A limit for one route template (`method` + `path`) or for one flow (`flow`), whatever its route. */
export type RouteLimit = Limit & ({ method: string; path: string; flow?: undefined } | { flow: string; method?: undefined; path?: undefined })

/**
 * Ops endpoints probed by orchestrators and scrapers: never refused by the blocklist or the limiter, so
 * a blocked address (a proxy, a node's kubelet) cannot get a healthy gateway restarted. Matched on the
 * path, with or without trailing slashes: `request.routeOptions` builds a new object on every read.
 */
const OPS_PATHS = new Set(['/health', '/ready', '/metrics'])
const isOpsPath = (path: string) => OPS_PATHS.has(path) || (path.endsWith('/') && OPS_PATHS.has(path.replace(/\/+$/, '')))

/** Where admins lift blocks: a valid admin token gets there from a blocked address, so nobody locks out the way back in. */
const BLOCK_ADMIN = '/admin/blocks'
const isBlockAdminPath = (path: string) => path === BLOCK_ADMIN || path.startsWith(`${BLOCK_ADMIN}/`)

const RULE = /^(?:([A-Z]+)\s+(\/\S*)|flow:([a-z][a-z0-9_.-]*))\s*=\s*([0-9.]+)\s*:\s*([0-9.]+)$/

/**
 * Parses RATE_LIMIT_ROUTES entries: `POST /api/v1/admin/login=5:0.1` (a route template) or
 * `flow:accounts.admin-login=5:0.1` (a flow, wherever it is bound). Reports every bad entry at once.
 */
export function parseRouteLimits(entries: readonly string[]): RouteLimit[] {
  const problems: string[] = []
  const limits: RouteLimit[] = []
  for (const entry of entries) {
    const m = RULE.exec(entry.trim())
    const capacity = Number(m?.[4])
    const refillPerSec = Number(m?.[5])
    if (!m || !Number.isInteger(capacity) || capacity < 1 || !(refillPerSec > 0)) {
      problems.push(`RATE_LIMIT_ROUTES: "${entry}" is not "METHOD /path=capacity:refillPerSec" or "flow:<name>=capacity:refillPerSec" (capacity a positive integer, refill > 0)`)
    } else if (m[3] !== undefined) limits.push({ flow: m[3], capacity, refillPerSec })
    else limits.push({ method: m[1]!, path: m[2]!, capacity, refillPerSec })
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return limits
}

export interface EdgeGuardDeps {
  store: RateLimitStore | undefined
  blocklist: Blocklist | undefined
  events: EventPublisher | undefined
  tokens: TokenService
  /** What serves the request (resolved once per request): its template labels rate-limit events; its flow picks a per-flow limit. */
  resolve?: (request: FastifyRequest) => Target | undefined
  /** Whether some proxy route declares its own limit now (the services file can change at run time). */
  proxyLimits?: () => boolean
  /** Set on every answer (the API's set of helmet's headers, computed once). */
  securityHeaders?: Readonly<Record<string, string>>
}

type Rule = { limit: Limit; id: string; path: string; headerLimit: string }
const ruleOf = (r: RouteLimit, i: number): Rule => ({
  limit: { capacity: r.capacity, refillPerSec: r.refillPerSec },
  id: `r${i}|`,
  path: r.path ?? '',
  headerLimit: String(r.capacity),
})

/** Builds the onRequest hook. */
export function createEdgeGuard(config: Pick<Config, 'rateLimitCapacity' | 'rateLimitRefillPerSec' | 'rateLimitRoutes' | 'trustProxy'>, deps: EdgeGuardDeps) {
  const { store, blocklist, events, tokens, securityHeaders } = deps
  const trusted = proxyAddr.compile([...config.trustProxy])
  let warnedForwarded = false
  const global: Rule = {
    limit: { capacity: config.rateLimitCapacity, refillPerSec: config.rateLimitRefillPerSec },
    id: '',
    path: '',
    headerLimit: String(config.rateLimitCapacity),
  }
  const routeLimits = parseRouteLimits(config.rateLimitRoutes)
  const router = routeLimits.some((r) => r.path !== undefined) ? FindMyWay({ ignoreTrailingSlash: true, caseSensitive: true, maxParamLength: 200 }) : undefined
  // Per-flow limits need the flow lookup here, so it is only made when one is configured.
  const flowRules = new Map<string, Rule>()
  routeLimits.forEach((r, i) => {
    if (r.flow !== undefined) flowRules.set(r.flow, ruleOf(r, i))
    else router!.on(r.method as 'GET', r.path, () => {}, ruleOf(r, i))
  })
  // A proxy route's own limit (services file), made into a rule once per route generation.
  const proxyRules = new WeakMap<object, Rule>()
  function targetRule(target: Target | undefined): Rule | undefined {
    if (target === undefined) return undefined
    if (target.kind === 'flow') return flowRules.get(target.route.flow)
    const spec = target.route.spec
    if (spec.rateLimit === undefined) return undefined
    let rule = proxyRules.get(spec)
    if (rule === undefined) {
      rule = { limit: spec.rateLimit, id: `p:${spec.path}|`, path: spec.path, headerLimit: String(spec.rateLimit.capacity) }
      proxyRules.set(spec, rule)
    }
    return rule
  }

  /** A verified admin token (the route's own hook checks it again and answers 401/403 for anything else). */
  function isAdmin(request: FastifyRequest): boolean {
    return request.headers.authorization !== undefined && callerOf(request, tokens).principal?.role === 'admin'
  }

  function keyOf(request: FastifyRequest, address: string): string {
    // A bad token is refused later by auth; for the limit its caller is just an address.
    const principal = request.headers.authorization === undefined ? undefined : callerOf(request, tokens).principal
    return principal === undefined ? address : `sub:${principal.sub}`
  }

  function refuse(request: FastifyRequest, rule: Rule, decision: Decision): FlowgateError {
    events?.emit({
      kind: 'rate_limit.hit',
      requestId: request.id,
      traceId: request.traceId,
      method: request.method,
      route: rule.path || deps.resolve?.(request)?.template || labelOf(request),
      clientKey: request.clientKey,
      address: request.clientAddress,
      capacity: rule.limit.capacity,
      refillPerSec: rule.limit.refillPerSec,
    })
    return errors.rateLimited(undefined, { headers: { 'retry-after': String(decision.retryAfterSec) } })
  }

  function apply(request: FastifyRequest, reply: FastifyReply, rule: Rule, decision: Decision): FlowgateError | undefined {
    reply.header('ratelimit-limit', rule.headerLimit)
    reply.header('ratelimit-remaining', decision.remaining)
    reply.header('ratelimit-reset', decision.resetSec)
    return decision.allowed ? undefined : refuse(request, rule, decision)
  }

  /** The blocked answer says until when, in the body and as Retry-After. */
  function blocked(block: BlockEntry): FlowgateError {
    const retryAfterSec = Math.max(1, Math.ceil((block.expiresAt - Date.now()) / 1000))
    return errors.ipBlocked(`Client address is blocked until ${new Date(block.expiresAt).toISOString()}`, {
      headers: { 'retry-after': String(retryAfterSec) },
    })
  }

  /**
   * Once per process: a proxy in front of the gateway that is not in TRUST_PROXY makes every client
   * behind it one address, so one abusive client gets all of them limited and blocked.
   */
  function warnUntrustedForwarder(request: FastifyRequest): void {
    const peer = request.socket?.remoteAddress
    if (peer === undefined || trusted(peer, 0)) return
    warnedForwarded = true
    request.log.warn(
      { peer, trustProxy: config.trustProxy },
      `X-Forwarded-For arrived from ${peer}, which is not in TRUST_PROXY: every client behind it shares one address (one rate limit, one block). If ${peer} is your proxy, add it to TRUST_PROXY.`,
    )
  }

  // Callback style, not async: with the memory store the whole check runs synchronously, so a request
  // pays no promise and no extra microtask turn for it.
  return function guardEdge(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (securityHeaders !== undefined) reply.headers(securityHeaders)
    // request.ip is undefined when the socket is already gone; such a request shares one bucket.
    const address = addressKey(request.ip || 'unknown')
    request.clientAddress = address
    request.clientKey = address
    if (!warnedForwarded && request.headers['x-forwarded-for'] !== undefined) warnUntrustedForwarder(request)
    if (isOpsPath(request.urlPath)) return done()
    if (blocklist !== undefined) {
      const block = blocklist.get(address)
      if (block !== undefined && !(isBlockAdminPath(request.urlPath) && isAdmin(request))) return done(blocked(block))
    }
    if (store === undefined) return done()
    const key = keyOf(request, address)
    request.clientKey = key
    let rule = global
    if (router !== undefined || flowRules.size > 0 || deps.proxyLimits?.()) {
      const found = router?.find(request.method as 'GET', request.urlPath)
      if (found) rule = found.store as Rule
      else rule = targetRule(deps.resolve?.(request)) ?? global
    }
    const taken = store.take(rule.id + key, rule.limit)
    if (!(taken instanceof Promise)) return done(apply(request, reply, rule, taken))
    taken.then(
      (decision) => done(apply(request, reply, rule, decision)),
      (err: unknown) => done(err as Error),
    )
  }
}
