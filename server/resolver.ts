// What serves a method and path: a flow route, or nothing (404, or 405 when another method serves
// the path). The one place that answers it, for the edge (per-route limits, labels) and for the
// route that serves the request; each request resolves once and carries the answer.
import type { FastifyRequest } from 'fastify'
import type { FlowRoute, RouteTable } from './routes.js'

export type Params = Record<string, string | undefined>

export interface FlowTarget {
  kind: 'flow'
  route: FlowRoute
  params: Params
  /** The route template (a label for metrics, logs and events; never the raw URL). */
  template: string
}

export type Target = FlowTarget

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

/** Resolves against the current flow route table (replaced whole by discovery). */
export function createResolver(flows: () => RouteTable): Resolver {
  return {
    resolve(method, path) {
      const found = flows().find(method, path)
      return found === undefined ? undefined : { kind: 'flow', route: found.route, params: found.params, template: found.route.path }
    },
    methodsOf: (path) => flows().methodsOf(path),
  }
}

/** The request's target, resolved on first use. */
export function targetOf(request: FastifyRequest, resolver: Resolver): Target | undefined {
  if (request.target === undefined) request.target = resolver.resolve(request.method, request.urlPath) ?? null
  return request.target ?? undefined
}
