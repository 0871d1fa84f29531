// The proxy route table: method + path to a route of the services file and the upstream it points
// at (the pools of the table's own generation, so a request keeps the pool it started on across a
// reload). Built whole at each reload; a request pays one router lookup.
import FindMyWay from 'find-my-way'
import type { RouteTable } from '../routes.js'
import type { RouteSpec } from './spec.js'
import type { Upstream } from './upstream.js'

export interface ProxyRoute {
  spec: RouteSpec
  upstream: Upstream
  /** The template without a trailing `/*`: a prefix route also serves its bare prefix. */
  prefix: boolean
}

export interface ProxyTable {
  readonly routes: readonly ProxyRoute[]
  find(method: string, path: string): { route: ProxyRoute; params: Record<string, string | undefined> } | undefined
  /** The methods some route serves the path with (405 with Allow rather than 404). */
  methodsOf(path: string): string[]
}

type Method = 'GET'

export const EMPTY_PROXY_TABLE: ProxyTable = { routes: [], find: () => undefined, methodsOf: () => [] }

export function buildProxyTable(specs: readonly RouteSpec[], upstreams: ReadonlyMap<string, Upstream>): ProxyTable {
  if (specs.length === 0) return EMPTY_PROXY_TABLE
  const router = FindMyWay({ ignoreTrailingSlash: true, caseSensitive: true, maxParamLength: 500 })
  const routes: ProxyRoute[] = []
  const methods = new Set<string>()
  for (const spec of specs) {
    const upstream = upstreams.get(spec.upstream)
    if (upstream === undefined) continue // the file check refuses this; a table is never built with it
    const prefix = spec.path.endsWith('/*')
    const route: ProxyRoute = { spec, upstream, prefix }
    routes.push(route)
    for (const m of spec.methods) {
      methods.add(m)
      router.on(m as Method, spec.path, noop, route)
      // `/api/products/*` also serves `/api/products`, unless another route claims it.
      const bare = prefix ? spec.path.slice(0, -2) || '/' : undefined
      if (bare !== undefined && !router.hasRoute(m as Method, bare)) router.on(m as Method, bare, noop, route)
    }
  }
  return {
    routes,
    find(method, path) {
      const found = router.find(method as Method, path)
      return found ? { route: found.store as ProxyRoute, params: found.params } : undefined
    },
    methodsOf(path) {
      return [...methods].filter((m) => router.find(m as Method, path) !== null)
    },
  }
}

function noop() {}

/**
 * Proxy routes that would take a request a flow takes. A prefix route (`/x/*`) is a fallback by
 * definition (flows win inside it); a fixed or parametric route overlapping a flow is a clash.
 */
export function clashes(proxies: ProxyTable, flows: RouteTable): string[] {
  const out: string[] = []
  for (const flow of flows.routes) {
    const sample = instantiate(flow.path)
    const hit = proxies.find(flow.method, sample)
    if (hit && !hit.route.prefix) out.push(`${flow.method} ${hit.route.spec.path} (proxy to ${hit.route.spec.upstream}) clashes with flow ${flow.flow} at ${flow.path}`)
  }
  for (const route of proxies.routes) {
    if (route.prefix) continue
    const sample = instantiate(route.spec.path)
    for (const m of route.spec.methods) {
      const hit = flows.find(m, sample)
      if (!hit) continue
      const line = `${m} ${route.spec.path} (proxy to ${route.spec.upstream}) clashes with flow ${hit.route.flow} at ${hit.route.path}`
      if (!out.includes(line)) out.push(line)
    }
  }
  return out
}

/** A concrete path a template matches: each parameter becomes a plain segment. */
function instantiate(template: string): string {
  return template.replace(/:[^/]+/g, 'x0')
}
