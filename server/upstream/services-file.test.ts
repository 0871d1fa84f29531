import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { checkServices, loadServicesFile, MAX_FILE_BYTES, routePathProblem, staticPrefix } from './services-file.js'

const opts = { bodyLimitBytes: 1024 }
const good = {
  upstreams: { products: { balancer: 'p2c-ewma', targets: [{ url: 'http://10.0.0.1:8080', weight: 2 }, { url: 'https://10.0.0.2/v2/' }] } },
  routes: [{ path: '/api/products/*', upstream: 'products', stripPrefix: true, auth: 'public', rateLimit: { capacity: 5, refillPerSec: 1 } }],
}
const problemsOf = (doc: unknown, format: 'json' | 'yaml' = 'json') => {
  const r = checkServices(typeof doc === 'string' ? doc : JSON.stringify(doc), format, opts)
  return r.ok ? [] : r.problems
}

describe('services file', () => {
  it('reads a good file with defaults filled and URLs normalised', () => {
    const r = checkServices(JSON.stringify(good), 'json', opts)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    const u = r.spec.upstreams.get('products')!
    expect(u.targets).toEqual([{ url: 'http://10.0.0.1:8080', weight: 2 }, { url: 'https://10.0.0.2/v2', weight: 1 }])
    expect(u.retry.retries).toBe(2)
    expect([...u.retry.statuses]).toEqual([502, 503, 504])
    expect([...u.stripRequestHeaders]).toEqual(['x-internal-secret', 'x-admin-override'])
    expect(r.spec.routes[0]).toMatchObject({ stripPrefix: '/api/products', methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], bodyLimitBytes: 1024 })
  })

  it('reads a route\'s websocket setting: off by default, true, or its own limits; GET required, unknown keys and bad bounds refused', () => {
    const route = (websocket: unknown, extra: Record<string, unknown> = {}) => ({ ...good, routes: [{ path: '/ws/*', upstream: 'products', websocket, ...extra }] })
    const spec = (doc: unknown) => {
      const r = checkServices(JSON.stringify(doc), 'json', opts)
      return r.ok ? r.spec.routes[0]!.websocket : r.problems
    }
    expect(spec(good)).toBeUndefined()
    expect(spec(route(true))).toEqual({ maxMessageBytes: undefined, idleTimeoutMs: undefined })
    expect(spec(route(false))).toBeUndefined()
    expect(spec(route({ maxMessageBytes: 65536, idleTimeoutMs: 60000 }))).toEqual({ maxMessageBytes: 65536, idleTimeoutMs: 60000 })
    expect(problemsOf(route(true, { methods: ['POST'] }))).toEqual(["/routes/0/websocket: a WebSocket upgrade is a GET, which the route's methods leave out"])
    expect(problemsOf(route({ maxMessageBytes: 10 })).join('\n')).toContain('/routes/0/websocket')
    expect(problemsOf(route({ idleTimeoutMs: 0 })).join('\n')).toContain('/routes/0/websocket')
    expect(problemsOf(route({ __proto__: { x: 1 }, idleTimeoutMs: 5000, extra: true })).join('\n')).toContain('/routes/0/websocket')
    expect(problemsOf(route('yes')).join('\n')).toContain('/routes/0/websocket')
  })

  it('reads YAML too', () => {
    const yaml = 'upstreams:\n  web:\n    targets:\n      - url: http://127.0.0.1:9000\nroutes:\n  - path: /web/*\n    upstream: web\n'
    const r = checkServices(yaml, 'yaml', opts)
    expect(r.ok && r.spec.routes[0]!.auth).toBe('authenticated') // safe by default
  })

  it('maps the Nexus shape to one upstream under /api/*', () => {
    const r = checkServices('{"services":[{"url":"http://127.0.0.1:4001","weight":2},{"url":"http://127.0.0.1:4002"}]}', 'json', opts)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.spec.upstreams.get('services')!.balancer).toBe('weighted-round-robin')
    expect(r.spec.routes.map((x) => [x.path, x.upstream])).toEqual([['/api/*', 'services']])
  })

  it('lists every problem at once, with where it is', () => {
    const problems = problemsOf({
      upstreams: {
        a: { balancer: 'random', targets: [{ url: 'http://x:1', weight: -2 }, { url: 'http://x:1/' }, { url: 'http://x:1' }] },
        b: { targets: [{ url: 'ftp://x' }, { url: 'http://user:pw@x' }] },
        c: {},
      },
      routes: [{ path: '/x/*', upstream: 'nope' }, { path: 'no-slash', upstream: 'a' }, { path: '/a/../b', upstream: 'a', methods: ['TRACE'] }],
    })
    expect(problems).toEqual(expect.arrayContaining([expect.stringContaining('/upstreams/a/targets/0/weight')]))
    const again = problemsOf({
      upstreams: {
        a: { balancer: 'random', targets: [{ url: 'http://x:1' }, { url: 'http://x:1/' }] },
        b: { targets: [{ url: 'ftp://x' }, { url: 'http://user:pw@x' }] },
        c: {},
      },
      routes: [{ path: '/x/*', upstream: 'nope' }, { path: 'no-slash', upstream: 'a' }, { path: '/a/../b', upstream: 'a', methods: ['TRACE'] }],
    })
    expect(again).toEqual([
      '/upstreams/a/balancer: unknown balancer "random" (one of round-robin, least-connections, weighted-round-robin, p2c-ewma)',
      '/upstreams/a/targets/1/url: duplicate target http://x:1',
      '/upstreams/b/targets/0/url: ftp: is not http: or https:',
      '/upstreams/b/targets/1/url: credentials in a target URL are not allowed (they would reach logs and stats)',
      '/upstreams/c: needs targets or a discover source',
      '/routes/0/upstream: unknown upstream "nope"',
      '/routes/1/path: must start with /',
      '/routes/2/path: no dot segments',
      '/routes/2/methods: TRACE is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS',
    ])
  })

  it('refuses invalid JSON and YAML with the parser message', () => {
    expect(problemsOf('{"upstreams": {', 'json')[0]).toMatch(/^invalid JSON: /)
    expect(problemsOf('upstreams: [a\n  b: c', 'yaml')[0]).toMatch(/^invalid YAML: /)
    expect(problemsOf('[1,2]', 'json')).toEqual(['the file must hold an object with "upstreams" and "routes"'])
    expect(problemsOf({ upstreams: {}, extra: 1 })).toEqual(['/extra: Unexpected property'])
  })

  it('treats __proto__ and constructor as names, never as prototype lookups', () => {
    const proto = problemsOf('{"upstreams":{"__proto__":{"targets":[{"url":"http://x:1"}]}},"routes":[{"path":"/a","upstream":"__proto__"}]}')
    expect(proto).toContain('/upstreams/__proto__: an upstream name is a lower-case letter then up to 62 of [a-z0-9_-]')
    expect(problemsOf({ upstreams: { a: { targets: [{ url: 'http://x:1' }] } }, routes: [{ path: '/a', upstream: 'toString' }] })).toEqual(['/routes/0/upstream: unknown upstream "toString"'])
    const r = checkServices(JSON.stringify({ upstreams: { constructor: { targets: [{ url: 'http://x:1' }] } }, routes: [{ path: '/a', upstream: 'constructor' }] }), 'json', opts)
    expect(r.ok && r.spec.upstreams.get('constructor')!.targets).toEqual([{ url: 'http://x:1', weight: 1 }])
    expect(({} as Record<string, unknown>).targets).toBeUndefined()
  })

  it('refuses a route declared twice for the same method and template', () => {
    expect(problemsOf({ upstreams: { a: { targets: [{ url: 'http://x:1' }] } }, routes: [{ path: '/a/:id', upstream: 'a', methods: ['GET'] }, { path: '/a/:key', upstream: 'a', methods: ['get', 'POST'] }] })).toEqual([
      '/routes/1: GET /a/:key is declared twice',
    ])
  })

  it('reads a GraphQL route: true takes the defaults, an object overrides some; GET and POST by default', () => {
    const doc = (graphql: unknown, methods?: string[]) => ({ ...good, routes: [{ path: '/graphql', upstream: 'products', graphql, ...(methods ? { methods } : {}) }] })
    const on = checkServices(JSON.stringify(doc(true)), 'json', opts)
    expect(on.ok && on.spec.routes[0]).toMatchObject({ methods: ['GET', 'POST'], graphql: { maxTokens: 15_000, maxDepth: undefined, introspection: true, retryQueries: true, maxOperationNames: 100 } })
    const tuned = checkServices(JSON.stringify(doc({ maxDepth: 10, introspection: false }, ['post', 'options'])), 'json', opts)
    expect(tuned.ok && tuned.spec.routes[0]).toMatchObject({ methods: ['POST', 'OPTIONS'], graphql: { maxDepth: 10, introspection: false, maxTokens: 15_000 } })
    const off = checkServices(JSON.stringify(doc(false)), 'json', opts)
    expect(off.ok && off.spec.routes[0]!.graphql).toBeUndefined()
    expect(problemsOf(doc(true, ['GET', 'PUT']))).toEqual(['/routes/0/methods: PUT is not one of GET, POST, OPTIONS (a GraphQL route)'])
    expect(problemsOf(doc({ maxDepth: 0, depth: 3 })).length).toBeGreaterThan(0)
    expect(problemsOf(doc({ maxDepth: 257 })).length).toBeGreaterThan(0)
  })

  it('checks route templates', () => {
    expect(routePathProblem('/api/products/*')).toBeUndefined()
    expect(routePathProblem('/api/:id/reviews')).toBeUndefined()
    expect(routePathProblem('/api/*/x')).toMatch(/\* only/)
    expect(routePathProblem('/api//x')).toMatch(/empty/)
    expect(routePathProblem('/api/%2e%2e')).toMatch(/percent/)
    expect(routePathProblem('/api/:id(\\d+)')).toMatch(/regular/)
    expect(staticPrefix('/api/products/*')).toBe('/api/products')
    expect(staticPrefix('/api/products/:id/x')).toBe('/api/products')
    expect(staticPrefix('/*')).toBe('')
  })

  it('refuses a missing file, a directory, a symlink loop and a huge file without reading it all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flowgate-svc-'))
    expect(await loadServicesFile(join(dir, 'none.json'), opts)).toEqual({ ok: false, problems: [`${join(dir, 'none.json')}: no such file`] })
    expect(await loadServicesFile(dir, opts)).toEqual({ ok: false, problems: [`${dir}: not a regular file`] })
    symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'))
    symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'))
    expect(await loadServicesFile(join(dir, 'loop-a'), opts)).toEqual({ ok: false, problems: [`${join(dir, 'loop-a')}: symlink loop`] })
    const huge = join(dir, 'huge.json')
    writeFileSync(huge, Buffer.alloc(MAX_FILE_BYTES + 1, 0x20))
    expect(await loadServicesFile(huge, opts)).toEqual({ ok: false, problems: [`${huge}: larger than ${MAX_FILE_BYTES} bytes`] })
  })
})
