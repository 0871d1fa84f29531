// The proxy's live state: the services file's current good generation (upstreams and route table),
// the targets shared across generations, what discovery sources add, and the reload loop. A reload
// builds a whole new generation and swaps it in; requests already under way keep the upstream and
// targets they picked, and targets no longer named finish their requests before their pools close.
// A bad file, or one clashing with a flow, keeps the last good generation, is logged once and counted.
import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import type { Registry } from 'prom-client'
import type { Config } from '../../lib/config.js'
import { ConfigError } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import type { EventPublisher } from '../events/publisher.js'
import type { RouteTable } from '../routes.js'
import type { Transition } from './breaker.js'
import { startHealthChecks } from './health-check.js'
import { createUpstreamMetrics, type UpstreamMetrics } from './metrics.js'
import { buildProxyTable, clashes, EMPTY_PROXY_TABLE, type ProxyTable } from './route-table.js'
import { loadServicesFile, type Checked } from './services-file.js'
import type { ServicesSpec, TargetSpec, UpstreamSpec } from './spec.js'
import { settingsKey, UpstreamTarget } from './target.js'
import { Upstream } from './upstream.js'

/** Targets one discovery source may add to one upstream. */
export const MAX_DISCOVERED = 64

export type Source = 'kv' | 'consul'

export interface Upstreams {
  readonly metrics: UpstreamMetrics
  table(): ProxyTable
  upstreams(): readonly Upstream[]
  /** Every live target (metrics, stats). */
  targets(): Iterable<UpstreamTarget>
  /** Whether some route declares its own rate limit. */
  hasRateLimits(): boolean
  /** Reads the file again now (the watch and the poll call this). */
  reload(): Promise<'applied' | 'unchanged' | 'rejected'>
  /** Throws (at start) when a proxy route clashes with a flow route; later the flow wins and it is logged. */
  checkFlows(flows: RouteTable): void
  /** A discovery source's current instances for a service; upstreams that follow it take them. */
  discovered(source: Source, service: string, targets: TargetSpec[]): void
  /** The services each source should follow under the current file. */
  followed(source: Source): Map<string, 'http' | 'https'>
  onSpecChange(listener: () => void): void
  close(): Promise<void>
}

export interface UpstreamsDeps {
  log: Logger
  registry: Registry
  events: EventPublisher | undefined
  /** The current flow route table, for the clash check on reload. */
  flows: () => RouteTable
}

interface Generation {
  spec: ServicesSpec
  upstreams: Map<string, Upstream>
  table: ProxyTable
  stopChecks: () => void
}

const EMPTY_SPEC: ServicesSpec = { upstreams: new Map(), routes: [] }
const RETIRE_TIMEOUT_MS = 30_000

/** Loads the services file (a bad one stops the start with every problem listed) and starts watching it. */
export async function createUpstreams(config: Pick<Config, 'servicesFile' | 'servicesPollMs' | 'bodyLimitBytes'>, deps: UpstreamsDeps): Promise<Upstreams> {
  const { log } = deps
  const path = config.servicesFile
  const checkOpts = { bodyLimitBytes: config.bodyLimitBytes }
  const shared = new Map<string, UpstreamTarget>()
  const metrics = createUpstreamMetrics(deps.registry, () => shared.values())
  const found = new Map<string, TargetSpec[]>() // `${source}|${service}` -> instances
  const listeners: Array<() => void> = []
  let gen: Generation = { spec: EMPTY_SPEC, upstreams: new Map(), table: EMPTY_PROXY_TABLE, stopChecks: () => {} }
  let rateLimited = false
  let lastRejected = ''
  let signature = ''
  let closed = false

  function onBreaker(t: UpstreamTarget, tr: Transition) {
    if (t.retired) return
    if (tr.to === 'opened') {
      log.warn({ upstream: t.upstream, target: t.url, reason: tr.reason }, 'circuit opened')
      deps.events?.emit({ kind: 'circuit.opened', upstream: t.label, reason: tr.reason || undefined })
    } else {
      log.info({ upstream: t.upstream, target: t.url }, 'circuit closed')
      deps.events?.emit({ kind: 'circuit.closed', upstream: t.label })
    }
  }

  function targetFor(spec: UpstreamSpec, url: string, weight: number, used: Map<string, UpstreamTarget>): UpstreamTarget {
    const key = `${spec.name}|${url}|${weight}|${settingsKey(spec)}`
    const t = used.get(key) ?? shared.get(key) ?? new UpstreamTarget(spec.name, url, weight, key, spec, onBreaker)
    used.set(key, t)
    return t
  }

  function targetsOf(spec: UpstreamSpec, used: Map<string, UpstreamTarget>): UpstreamTarget[] {
    const list = [...spec.targets]
    if (spec.discover !== undefined) {
      const source: Source = 'kv' in spec.discover ? 'kv' : 'consul'
      const service = 'kv' in spec.discover ? spec.discover.kv : spec.discover.consul
      for (const t of found.get(`${source}|${service}`) ?? []) if (!list.some((s) => s.url === t.url)) list.push(t)
    }
    return list.map((t) => targetFor(spec, t.url, t.weight, used))
  }

  /** Builds a generation from a spec, reusing live targets; returns it with the targets it uses. */
  function build(spec: ServicesSpec): { next: Generation; used: Map<string, UpstreamTarget> } {
    const used = new Map<string, UpstreamTarget>()
    const upstreams = new Map<string, Upstream>()
    for (const [name, u] of spec.upstreams) {
      const upstream = new Upstream(u)
      upstream.targets = targetsOf(u, used)
      upstreams.set(name, upstream)
    }
    return { next: { spec, upstreams, table: buildProxyTable(spec.routes, upstreams), stopChecks: () => {} }, used }
  }

  function swap(next: Generation, used: Map<string, UpstreamTarget>) {
    gen.stopChecks()
    gen = next
    rateLimited = next.spec.routes.some((r) => r.rateLimit !== undefined)
    const stops = [...next.upstreams.values()].map((u) => startHealthChecks(u, log))
    next.stopChecks = () => stops.forEach((s) => s())
    retireUnused(used)
  }

  /** `used` becomes the set of live targets; the others finish their requests and close. */
  function retireUnused(used: Map<string, UpstreamTarget>) {
    for (const [key, t] of shared) {
      if (used.has(key)) continue
      shared.delete(key)
      void t.retire(RETIRE_TIMEOUT_MS).catch((err: unknown) => log.warn({ err, target: t.label }, 'closing a retired target failed'))
    }
    for (const [key, t] of used) shared.set(key, t)
  }

  /** Applies a checked file: false (logged once, counted) when it is bad or clashes with a flow. */
  function apply(checked: Checked, atStart: boolean): boolean {
    if (!checked.ok) return reject(checked.problems, atStart)
    const { next, used } = build(checked.spec)
    const clash = clashes(next.table, deps.flows())
    if (clash.length > 0) {
      for (const [key, t] of used) if (!shared.has(key)) void t.retire(0)
      return reject(clash, atStart)
    }
    swap(next, used)
    lastRejected = ''
    metrics.reload('applied')
    log.info({ file: path, upstreams: [...next.upstreams.keys()], routes: next.spec.routes.map((r) => `${r.methods.join(',')} ${r.path} -> ${r.upstream}`) }, 'services file applied')
    for (const l of listeners) l()
    return true
  }

  function reject(problems: string[], atStart: boolean): false {
    if (atStart) throw new ConfigError(problems.map((p) => `SERVICES_FILE ${path}: ${p}`))
    metrics.reload('rejected')
    const text = problems.join('\n')
    if (text !== lastRejected) {
      lastRejected = text
      log.error({ file: path, problems }, 'services file rejected: the last good routes stay in force')
    }
    return false
  }

  async function fileSignature(): Promise<string> {
    try {
      const s = await stat(path!)
      return `${s.ino}:${s.size}:${s.mtimeMs}`
    } catch (err) {
      return `error:${(err as { code?: string }).code ?? ''}`
    }
  }

  // A flow that appears later on a proxy route's path wins it (flows resolve first): said once.
  let flowsSeen: RouteTable | undefined
  let clashSaid = ''
  function watchFlowClashes() {
    const flows = deps.flows()
    if (flows === flowsSeen) return
    flowsSeen = flows
    const text = clashes(gen.table, flows).join('\n')
    if (text !== '' && text !== clashSaid) log.warn({ clashes: text.split('\n') }, 'a flow now takes requests of a proxy route: the flow is served')
    clashSaid = text
  }

  let reloading: Promise<'applied' | 'unchanged' | 'rejected'> | undefined
  async function reloadNow(): Promise<'applied' | 'unchanged' | 'rejected'> {
    if (path === undefined || closed) return 'unchanged'
    const sig = await fileSignature()
    if (sig === signature) return 'unchanged'
    signature = sig
    return apply(await loadServicesFile(path, checkOpts), false) ? 'applied' : 'rejected'
  }
  const reload = () => (reloading ??= reloadNow().finally(() => (reloading = undefined)))

  let watcher: FSWatcher | undefined
  let poll: NodeJS.Timeout | undefined
  let debounce: NodeJS.Timeout | undefined
  if (path !== undefined) {
    signature = await fileSignature()
    apply(await loadServicesFile(path, checkOpts), true)
    // The directory is watched, not the file: editors replace a file by renaming a new one over it.
    try {
      watcher = watch(dirname(path), (_event, name) => {
        if (name !== null && name !== basename(path)) return
        clearTimeout(debounce)
        debounce = setTimeout(() => void reload(), 50)
      })
      watcher.on('error', (err) => log.warn({ err }, 'services file watch failed; polling only'))
      watcher.unref()
    } catch (err) {
      log.warn({ err }, 'services file cannot be watched; polling only')
    }
    poll = setInterval(() => {
      void reload()
      watchFlowClashes()
    }, config.servicesPollMs)
    poll.unref()
  }

  return {
    metrics,
    table: () => gen.table,
    upstreams: () => [...gen.upstreams.values()],
    targets: () => shared.values(),
    hasRateLimits: () => rateLimited,
    reload,
    checkFlows(flows) {
      const clash = clashes(gen.table, flows)
      if (clash.length > 0) throw new ConfigError(clash.map((c) => `SERVICES_FILE ${path}: ${c}`))
    },
    discovered(source, service, targets) {
      found.set(`${source}|${service}`, targets.slice(0, MAX_DISCOVERED))
      // Only the upstreams following this service change; their target list is replaced whole.
      for (const u of gen.upstreams.values()) {
        const d = u.spec.discover
        if (d === undefined || ('kv' in d ? source !== 'kv' || d.kv !== service : source !== 'consul' || d.consul !== service)) continue
        u.targets = targetsOf(u.spec, new Map())
      }
      const used = new Map<string, UpstreamTarget>()
      for (const u of gen.upstreams.values()) for (const t of u.targets) used.set(t.settingsKey, t)
      retireUnused(used)
    },
    followed(source) {
      const out = new Map<string, 'http' | 'https'>()
      for (const u of gen.spec.upstreams.values()) {
        const d = u.discover
        if (d === undefined) continue
        if (source === 'kv' && 'kv' in d) out.set(d.kv, 'http')
        if (source === 'consul' && 'consul' in d) out.set(d.consul, d.scheme)
      }
      return out
    },
    onSpecChange(listener) {
      listeners.push(listener)
    },
    async close() {
      closed = true
      watcher?.close()
      clearInterval(poll)
      clearTimeout(debounce)
      gen.stopChecks()
      await Promise.all([...shared.values()].map((t) => t.retire(1000)))
      shared.clear()
    },
  }
}
