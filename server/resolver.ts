// What serves a method and path: a flow route, a proxy route, or nothing (404, or 405 when another
// method serves the path). Flows first: a proxy prefix route takes what no flow takes. The one place
// that answers it, for the edge (per-route limits, labels), the body parser and the route that
// serves the request; each request resolves once and carries the answer.
import type { FastifyRequest } from 'fastify'
import type { FlowRoute, RouteTable } from './routes.js'
import type { ProxyRoute, ProxyTable } from './upstream/route-table.js'

export type Params = Record<string, string | undefined>

export interface FlowTarget {
  kind: 'flow'
  route: FlowRoute
  params: Params
  /** The route template (a label for metrics, logs and events; never the raw URL). */
  template: string
}

export interface ProxyTarget {
  kind: 'proxy'
  route: ProxyRoute
  params: Params
  /** The route template of the services file. */
  template: string
}

export type Target = FlowTarget | ProxyTarget

export interface Resolver {
  resolve(method: string, path: string): Target | undefined
  /** The methods that serve the path (405 with `Allow` rather than 404). */
  methodsOf(path: string): readonly string[]
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by targetOf() on first use: null when nothing serves the request. */
    target: Target | null | undefined
  }
}

/** Resolves against the current flow route table (replaced whole by discovery), then the proxy table (replaced whole on reload). */
export function createResolver(flows: () => RouteTable, proxies?: () => ProxyTable): Resolver {
  return {
    resolve(method, path) {
      const found = flows().find(method, path)
      if (found !== undefined) return { kind: 'flow', route: found.route, params: found.params, template: found.route.path }
      const proxied = proxies?.().find(method, path)
      return proxied === undefined ? undefined : { kind: 'proxy', route: proxied.route, params: proxied.params, template: proxied.route.spec.path }
    },
    methodsOf: (path) => {
      const proxied = proxies?.().methodsOf(path) ?? []
      return proxied.length === 0 ? flows().methodsOf(path) : [...new Set([...flows().methodsOf(path), ...proxied])]
    },
  }
}

/** The request's target, resolved on first use. */
export function targetOf(request: FastifyRequest, resolver: Resolver): Target | undefined {
  if (request.target === undefined) request.target = resolver.resolve(request.method, request.urlPath) ?? null
  return request.target ?? undefined
}
