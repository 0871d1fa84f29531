// The gateway's own routes (ops, docs, admin), indexed as Fastify registers them: the docs list
// them beside the flows, and a path that exists under other methods answers 405 with `Allow`
// rather than 404. Collected by the onRoute hook, so a route added anywhere is known without a list
// kept by hand; the index is built at registration, and a request pays one router lookup.
import FindMyWay from 'find-my-way'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import type { AuthPolicy } from '../lib/auth.js'
import { errors, type FlowgateError } from '../lib/errors.js'
import { policyOfHooks } from './caller.js'
import { CATCH_ALL } from './hooks.js'
import type { Resolver } from './resolver.js'

export interface OwnRoute {
  method: string
  /** Fastify style (`/admin/blocks/:address`). */
  path: string
  summary: string | undefined
  auth: AuthPolicy
  /** The route's TypeBox/JSON schemas, when it declares them. */
  params: Record<string, unknown> | undefined
  querystring: Record<string, unknown> | undefined
}

export interface OwnRoutes {
  /** Every own route but the automatic HEAD twins, in registration order. */
  list(): readonly OwnRoute[]
  /** Methods an own route answers on this path (empty when none). */
  methodsOf(path: string): readonly string[]
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** One line for the docs. */
    summary?: string
  }
}

type Schema = { params?: Record<string, unknown>; querystring?: Record<string, unknown> }

/** Starts indexing: call before any route is registered. */
export function indexOwnRoutes(app: FastifyInstance): OwnRoutes {
  const routes: OwnRoute[] = []
  const router = FindMyWay({ ignoreTrailingSlash: true, caseSensitive: true, maxParamLength: 200 })
  // One entry per path pattern, holding every method registered on it (looked up under GET).
  const methodsByPattern = new Map<string, string[]>()
  app.addHook('onRoute', function indexRoute(opts: RouteOptions) {
    if (opts.url === CATCH_ALL || opts.url.includes('*')) return
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method]
    let known = methodsByPattern.get(opts.url)
    if (known === undefined) {
      known = []
      methodsByPattern.set(opts.url, known)
      router.on('GET', opts.url, () => {}, known)
    }
    const schema = (opts.schema ?? {}) as Schema
    const summary = (opts.config as { summary?: string } | undefined)?.summary
    for (const method of methods) {
      if (known.includes(method)) continue
      known.push(method)
      // Fastify adds a HEAD twin to every GET route; the docs list the GET only.
      if (method === 'HEAD' && known.includes('GET')) continue
      routes.push({ method, path: opts.url, summary, auth: policyOfHooks(opts.onRequest), params: schema.params, querystring: schema.querystring })
    }
  })
  return {
    list: () => routes,
    methodsOf(path) {
      const found = router.find('GET', path)
      return found ? (found.store as string[]) : []
    },
  }
}

/** The answer for a request nothing serves: 405 with `Allow` when another method serves the path, else 404. */
export function notServed(request: FastifyRequest, own: OwnRoutes, resolver: Resolver): FlowgateError {
  const path = request.urlPath
  const allowed = new Set([...own.methodsOf(path), ...resolver.methodsOf(path)])
  if (allowed.size === 0) return errors.notFound(`No route ${request.method} ${path}`)
  if (allowed.has('GET')) allowed.add('HEAD')
  return errors.methodNotAllowed(`${request.method} is not allowed on ${path}`, { headers: { allow: [...allowed].sort().join(', ') } })
}
