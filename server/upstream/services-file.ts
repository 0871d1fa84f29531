// Reads and checks a services file (YAML or JSON): every problem is listed at once, with where it
// is, and nothing is applied unless the whole file is good. Bounded: the file's size, the number of
// upstreams, targets and routes; a symlink loop, a directory or a FIFO is a problem, not a hang.
import { readFileSync } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { parse as parseYaml } from 'yaml'
import {
  BALANCERS,
  DEFAULT_STRIP_REQUEST_HEADERS,
  DEFAULTS,
  NAME,
  NexusFile,
  PROXY_METHODS,
  ServicesFile,
  type BalancerName,
  type ProxyMethod,
  type RouteFile,
  type RouteSpec,
  type ServicesSpec,
  type TargetSpec,
  type UpstreamFile,
  type UpstreamSpec,
} from './spec.js'
import { GRAPHQL_DEFAULT_METHODS, GRAPHQL_METHODS, graphqlSettings } from './graphql-settings.js'

/** Larger than any hand-written services file; a runaway generator's output is refused. */
export const MAX_FILE_BYTES = 1024 * 1024

const FileCheck = TypeCompiler.Compile(ServicesFile)
const NexusCheck = TypeCompiler.Compile(NexusFile)
const NAME_RE = new RegExp(NAME)

export type Checked = { ok: true; spec: ServicesSpec } | { ok: false; problems: string[] }

export interface CheckOptions {
  /** The body limit of a route that sets none (BODY_LIMIT_BYTES). */
  bodyLimitBytes: number
  /** Reads a CA file named by an upstream's `tls.caFile` (tests pass their own). */
  readCa?: (path: string) => string
}

/** Reads the file (bounded) and checks it. */
export async function loadServicesFile(path: string, opts: CheckOptions): Promise<Checked> {
  let text: string
  try {
    text = await readBounded(path)
  } catch (err) {
    return { ok: false, problems: [describeReadError(path, err)] }
  }
  return checkServices(text, path.endsWith('.json') ? 'json' : 'yaml', opts)
}

async function readBounded(path: string): Promise<string> {
  // stat first: opening a FIFO would block until a writer came; stat follows links and fails with ELOOP on a loop.
  const info = await stat(path)
  if (!info.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' })
  if (info.size > MAX_FILE_BYTES) throw Object.assign(new Error('too large'), { code: 'ETOOBIG' })
  const handle = await open(path, 'r')
  try {
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1)
    let length = 0
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null)
      if (bytesRead === 0) break
      length += bytesRead
      if (length > MAX_FILE_BYTES) throw Object.assign(new Error('too large'), { code: 'ETOOBIG' })
    }
    return buf.toString('utf8', 0, length)
  } finally {
    await handle.close()
  }
}

function describeReadError(path: string, err: unknown): string {
  const code = (err as { code?: string }).code
  switch (code) {
    case 'ENOENT':
      return `${path}: no such file`
    case 'ELOOP':
      return `${path}: symlink loop`
    case 'EACCES':
      return `${path}: permission denied`
    case 'ENOTFILE':
      return `${path}: not a regular file`
    case 'ETOOBIG':
      return `${path}: larger than ${MAX_FILE_BYTES} bytes`
    default:
      return `${path}: cannot be read (${code ?? (err instanceof Error ? err.message : String(err))})`
  }
}

/** Parses and checks the text of a services file; `format` picks the parser. */
export function checkServices(text: string, format: 'json' | 'yaml', opts: CheckOptions): Checked {
  let doc: unknown
  try {
    doc = format === 'json' ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 100, uniqueKeys: true })
  } catch (err) {
    return { ok: false, problems: [`invalid ${format === 'json' ? 'JSON' : 'YAML'}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`] }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, problems: ['the file must hold an object with "upstreams" and "routes"'] }
  if (Object.hasOwn(doc, 'services') && !Object.hasOwn(doc, 'upstreams')) return checkNexus(doc, opts)
  if (!FileCheck.Check(doc)) return { ok: false, problems: schemaProblems(FileCheck.Errors(doc)) }
  return normalise(doc, opts)
}

/** `{"services":[{"url":…,"weight":2}]}`: one upstream named `services`, served under /api/*. */
function checkNexus(doc: object, opts: CheckOptions): Checked {
  if (!NexusCheck.Check(doc)) return { ok: false, problems: schemaProblems(NexusCheck.Errors(doc)) }
  const hasWeights = doc.services.some((s) => s.weight !== undefined)
  return normalise(
    {
      upstreams: { services: { targets: doc.services, balancer: doc.balancer ?? (hasWeights ? 'weighted-round-robin' : 'round-robin') } },
      routes: [{ path: '/api/*', upstream: 'services', ...(doc.auth === undefined ? {} : { auth: doc.auth }) }],
    },
    opts,
  )
}

function schemaProblems(errors: Iterable<{ path: string; message: string; value: unknown }>): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    const line = `${e.path || '/'}: ${e.message}`
    if (seen.has(line)) continue
    seen.add(line)
    out.push(line)
    if (out.length >= 50) break
  }
  return out
}

function normalise(doc: { upstreams: Record<string, UpstreamFile>; routes?: RouteFile[] }, opts: CheckOptions): Checked {
  const problems: string[] = []
  // A Map from here on: a name is data, never a property lookup on an object with a prototype.
  const upstreams = new Map<string, UpstreamSpec>()
  for (const name of Object.keys(doc.upstreams)) {
    const where = `/upstreams/${name}`
    if (!NAME_RE.test(name)) {
      problems.push(`${where}: an upstream name is a lower-case letter then up to 62 of [a-z0-9_-]`)
      continue
    }
    const u = upstream(name, doc.upstreams[name]!, where, problems, opts)
    if (u) upstreams.set(name, u)
  }
  const routes: RouteSpec[] = []
  const seen = new Set<string>()
  ;(doc.routes ?? []).forEach((r, i) => {
    const where = `/routes/${i}`
    const route = routeOf(r, where, problems, opts)
    if (!Object.hasOwn(doc.upstreams, r.upstream)) problems.push(`${where}/upstream: unknown upstream "${r.upstream}"`)
    if (!route) return
    for (const m of route.methods) {
      const key = `${m} ${templateKey(route.path)}`
      if (seen.has(key)) problems.push(`${where}: ${m} ${route.path} is declared twice`)
      seen.add(key)
    }
    routes.push(route)
  })
  if (problems.length > 0) return { ok: false, problems }
  return { ok: true, spec: { upstreams, routes } }
}

/** Two templates that differ only in their parameters' names match the same requests. */
export function templateKey(path: string): string {
  return path.replace(/:[^/]+/g, ':')
}

function upstream(name: string, u: UpstreamFile, where: string, problems: string[], opts: CheckOptions): UpstreamSpec | undefined {
  const before = problems.length
  const balancer = (u.balancer ?? DEFAULTS.balancer) as BalancerName
  if (!(BALANCERS as readonly string[]).includes(balancer)) problems.push(`${where}/balancer: unknown balancer "${u.balancer}" (one of ${BALANCERS.join(', ')})`)
  const targets: TargetSpec[] = []
  const urls = new Set<string>()
  ;(u.targets ?? []).forEach((t, i) => {
    const url = targetUrl(t.url)
    if (typeof url !== 'string') return problems.push(`${where}/targets/${i}/url: ${url.problem}`)
    if (urls.has(url)) return problems.push(`${where}/targets/${i}/url: duplicate target ${url}`)
    urls.add(url)
    targets.push({ url, weight: t.weight ?? 1 })
  })
  if ((u.targets ?? []).length === 0 && u.discover === undefined) problems.push(`${where}: needs targets or a discover source`)
  const timeouts = { ...DEFAULTS.timeouts, ...u.timeouts }
  if (timeouts.tryMs > timeouts.requestMs) problems.push(`${where}/timeouts: tryMs (${timeouts.tryMs}) is longer than requestMs (${timeouts.requestMs})`)
  const retry = { ...DEFAULTS.retry, ...u.retry }
  if (retry.backoffBaseMs > retry.backoffMaxMs) problems.push(`${where}/retry: backoffBaseMs is larger than backoffMaxMs`)
  const outlier = { ...DEFAULTS.outlier, ...u.outlier }
  if (outlier.baseEjectionMs > outlier.maxEjectionMs) problems.push(`${where}/outlier: baseEjectionMs is larger than maxEjectionMs`)
  let ca: string | undefined
  if (u.tls?.caFile !== undefined) {
    try {
      ca = (opts.readCa ?? ((p) => readFileSync(p, 'utf8')))(u.tls.caFile)
    } catch (err) {
      problems.push(`${where}/tls/caFile: cannot be read (${(err as { code?: string }).code ?? String(err)})`)
    }
  }
  if (problems.length > before) return undefined
  const discover = u.discover === undefined ? undefined : 'kv' in u.discover ? { kv: u.discover.kv } : { consul: u.discover.consul, scheme: u.discover.scheme ?? 'http' as const }
  return {
    name,
    balancer,
    targets,
    discover,
    timeouts,
    retry: { ...retry, statuses: new Set(retry.statuses) },
    breaker: { ...DEFAULTS.breaker, ...u.breaker },
    outlier,
    healthCheck: u.healthCheck === undefined ? undefined : { ...DEFAULTS.healthCheck, ...u.healthCheck },
    connections: u.connections ?? DEFAULTS.connections,
    maxPending: u.maxPending ?? DEFAULTS.maxPending,
    stripRequestHeaders: new Set((u.stripRequestHeaders ?? DEFAULT_STRIP_REQUEST_HEADERS).map((h) => h.toLowerCase())),
    stripResponseHeaders: new Set((u.stripResponseHeaders ?? []).map((h) => h.toLowerCase())),
    tls: u.tls === undefined ? undefined : { ca, insecure: u.tls.insecure ?? false, serverName: u.tls.serverName },
  }
}

/** A target URL as `origin[/base]`, or why it is refused. */
export function targetUrl(text: string): string | { problem: string } {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return { problem: `"${text.slice(0, 200)}" is not a URL` }
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { problem: `${url.protocol} is not http: or https:` }
  if (url.username || url.password) return { problem: 'credentials in a target URL are not allowed (they would reach logs and stats)' }
  if (url.search || url.hash) return { problem: 'a target URL has no query or fragment' }
  if (!url.hostname) return { problem: 'no host' }
  const base = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '')
  return `${url.origin}${base}`
}

function routeOf(r: RouteFile, where: string, problems: string[], opts: CheckOptions): RouteSpec | undefined {
  const before = problems.length
  const pathProblem = routePathProblem(r.path)
  if (pathProblem) problems.push(`${where}/path: ${pathProblem}`)
  const methods: ProxyMethod[] = []
  const graphql = graphqlSettings(r.graphql)
  // A GraphQL route reads the operation of GET and POST only: any other method could carry a document past its limits.
  const allowed: readonly string[] = graphql ? GRAPHQL_METHODS : PROXY_METHODS
  for (const m of r.methods ?? (graphql ? GRAPHQL_DEFAULT_METHODS : PROXY_METHODS)) {
    const upper = m.toUpperCase()
    if (!allowed.includes(upper)) problems.push(`${where}/methods: ${m} is not one of ${allowed.join(', ')}${graphql ? ' (a GraphQL route)' : ''}`)
    else if (!methods.includes(upper as ProxyMethod)) methods.push(upper as ProxyMethod)
  }
  if (r.websocket && !methods.includes('GET')) problems.push(`${where}/websocket: a WebSocket upgrade is a GET, which the route's methods leave out`)
  if (problems.length > before) return undefined
  const ws = r.websocket === true ? {} : r.websocket || undefined
  return {
    path: r.path,
    upstream: r.upstream,
    methods,
    stripPrefix: r.stripPrefix ? staticPrefix(r.path) : '',
    auth: r.auth ?? 'authenticated',
    rateLimit: r.rateLimit,
    retryNonIdempotent: r.retryNonIdempotent ?? false,
    meta: r.meta ?? false,
    timeoutMs: r.timeoutMs,
    bodyLimitBytes: r.bodyLimitBytes ?? opts.bodyLimitBytes,
    graphql,
    websocket: ws === undefined ? undefined : { maxMessageBytes: ws.maxMessageBytes, idleTimeoutMs: ws.idleTimeoutMs },
  }
}

/** Why a route path is refused: it must be a plain template the router and the prefix logic agree on. */
export function routePathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'must start with /'
  if (/[\s?#%\\()]/.test(path)) return 'no spaces, query, fragment, percent-encoding, backslashes or regular expressions'
  const segments = path.split('/').slice(1)
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!
    if (s === '' && i < segments.length - 1) return 'no empty segments (//)'
    if (s === '.' || s === '..') return 'no dot segments'
    if (s.includes('*') && (s !== '*' || i !== segments.length - 1)) return 'a * only as the whole last segment (/prefix/*)'
    if (s.startsWith(':') && !/^:[A-Za-z_][A-Za-z0-9_]*$/.test(s)) return `bad parameter "${s}"`
  }
  return undefined
}

/** The path before the first parameter or wildcard, without its trailing slash. */
export function staticPrefix(path: string): string {
  const cut = path.search(/\/(?::|\*)/)
  const head = cut === -1 ? path : path.slice(0, cut)
  return head.replace(/\/+$/, '')
}
