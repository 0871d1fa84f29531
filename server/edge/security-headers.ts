// Helmet's security headers, computed once. @fastify/helmet rebuilds the helmet middleware (CSP
// directives parsed again) on every request in two extra hooks, which cost the gateway ~9% of its
// CPU per request in the benchmark; with a fixed configuration its output never changes, so the
// edge asks it once at start and sets the same headers itself.
import helmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import Fastify from 'fastify'

export interface SecurityHeaders {
  /** On every JSON answer of the API. */
  readonly api: Readonly<Record<string, string>>
  /** On the HTML docs page, in place of `api`. */
  readonly document: Readonly<Record<string, string>>
}

// A JSON answer is never rendered, framed or used as a script, so it gets the short set of the OWASP
// REST Security Cheat Sheet: nothing may load from it, nothing may frame it, no MIME sniffing, HTTPS
// only, and no caching of what may be per-user data. The browser-page headers of helmet's defaults
// (a CSP for documents, COOP, Origin-Agent-Cluster, the legacy IE and Flash ones) say nothing to a
// JSON client and made up two thirds of each answer's header bytes.
const API: FastifyHelmetOptions = {
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: false,
  originAgentCluster: false,
  referrerPolicy: { policy: 'no-referrer' },
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xFrameOptions: { action: 'deny' },
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
}

// Headers a plain Fastify reply has anyway; everything else on the probe's answer is helmet's.
const NOT_HELMET = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding'])

async function probe(options: FastifyHelmetOptions): Promise<Readonly<Record<string, string>>> {
  const app = Fastify({ logger: false })
  await app.register(helmet, { ...options, global: true })
  app.get('/', async () => ({}))
  const res = await app.inject({ url: '/' })
  await app.close()
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(res.headers)) {
    if (!NOT_HELMET.has(name) && typeof value === 'string') out[name] = value
  }
  return Object.freeze(out)
}

/** The API's headers and the docs page's (helmet's defaults), each computed by helmet once. */
export async function securityHeaders(): Promise<SecurityHeaders> {
  const [api, document] = await Promise.all([probe(API), probe({})])
  return { api: Object.freeze({ ...api, 'cache-control': 'no-store' }), document }
}
