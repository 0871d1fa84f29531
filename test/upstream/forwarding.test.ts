// Forwarding through a proxy route, against real upstream servers on free ports: method, path, query
// and body byte-exact, headers both ways, auth as flows have it, and the gateway's own errors.
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { captureLogs, startGateway, testConfig, type TestGateway } from '../harness/stack.js'
import { call, rawCall, servicesFile, startUpstream, type TestUpstream } from './harness.js'

let nats: NatsServer
let a: TestUpstream
let gw: TestGateway
let base = ''
const sink = captureLogs('warn')

beforeAll(async () => {
  nats = await startNats()
  a = await startUpstream('a')
  const file = servicesFile({
    upstreams: {
      products: { targets: [{ url: `${a.url}/v2` }], stripRequestHeaders: ['x-internal-secret', 'x-admin-override'] },
      // `constructor` is a name like any other: it never reaches Object.prototype.
      constructor: { targets: [{ url: a.url }] },
    },
    routes: [
      { path: '/api/products/*', upstream: 'products', stripPrefix: true, auth: 'public' },
      { path: '/api/admin-only/*', upstream: 'products', auth: { roles: ['admin'] } },
      { path: '/api/items/:id', upstream: 'constructor', methods: ['GET'], auth: 'authenticated' },
    ],
  })
  gw = await startGateway(testConfig(nats.url, { servicesFile: file.path }), sink.log)
  await gw.gateway.app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(gw.gateway.app.server.address() as AddressInfo).port}`
})

afterAll(async () => {
  await gw?.stop()
  await a?.stop()
  await nats?.stop()
})

describe('proxy forwarding', () => {
  it('forwards method, path (prefix stripped, under the target base path) and query as they came', async () => {
    const res = await call(base, '/api/products/42/reviews?sort=desc&q=caf%C3%A9+x')
    expect(res.status).toBe(200)
    expect(res.json()).toMatchObject({ instance: 'a', method: 'GET', url: '/v2/42/reviews?sort=desc&q=caf%C3%A9+x' })
    expect(res.headers.get('x-trace-id')).toMatch(/^[0-9a-f]{32}$/)
    const bare = await call(base, '/api/products?x=1')
    expect(bare.json()).toMatchObject({ url: '/v2/?x=1' })
  })

  it('sends a POST body byte-exact, with its content type', async () => {
    const body = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0x7b])
    const res = await call(base, '/api/products/upload', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body })
    expect(res.status).toBe(200)
    const seen = a.seen.at(-1)!
    expect(seen.method).toBe('POST')
    expect(seen.body.equals(body)).toBe(true)
    expect(seen.headers['content-type']).toBe('application/octet-stream')
  })

  it('passes JSON bodies through unparsed (byte-exact, not re-serialised)', async () => {
    const text = '{"b":1,  "a":[1,2,3],"__proto__":{"x":1}}'
    const res = await call(base, '/api/products/json', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: text })
    expect(res.status).toBe(200)
    expect(a.seen.at(-1)!.body.toString()).toBe(text)
  })

  it('sets X-Forwarded-*, x-request-id and traceparent, strips hop-by-hop and listed headers', async () => {
    await rawCall(base, '/api/products/h', {
      headers: {
        'x-request-id': 'req-123',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        connection: 'x-drop-me, x-forwarded-for, authorization',
        authorization: 'Bearer not-checked-on-a-public-route',
        'x-drop-me': '1',
        'x-internal-secret': 's3cret',
        'x-admin-override': 'yes',
        'x-forwarded-for': '6.6.6.6',
        'x-keep': 'kept',
      },
    })
    const h = a.seen.at(-1)!.headers
    expect(h['x-request-id']).toBe('req-123')
    expect(h.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/)
    expect(h.traceparent).not.toContain('b7ad6b7169203331') // a child span of the gateway's, not the caller's
    expect(h['x-drop-me']).toBeUndefined()
    expect(h['x-internal-secret']).toBeUndefined()
    expect(h['x-admin-override']).toBeUndefined()
    // Not a trusted proxy: the client's X-Forwarded-For is replaced, and naming it in Connection removes nothing of ours.
    expect(h['x-forwarded-for']).toBe('127.0.0.1')
    expect(h['x-forwarded-proto']).toBe('http')
    expect(h['x-forwarded-host']).toBe(base.slice('http://'.length))
    expect(h.host).toBe(`127.0.0.1:${a.port}`)
    expect(h['x-keep']).toBe('kept')
    // Authorization is never hop-by-hop here: the upstream sees the credentials the gateway saw.
    expect(h.authorization).toBe('Bearer not-checked-on-a-public-route')
  })

  it('passes upstream errors through as they are, minus hop-by-hop headers', async () => {
    a.setHandler((_req, res) => {
      res.writeHead(418, { 'content-type': 'text/plain', 'x-upstream': 'yes', connection: 'x-secret-hop', 'x-secret-hop': 'no' })
      res.end('short and stout')
    })
    try {
      const res = await call(base, '/api/products/teapot')
      expect(res.status).toBe(418)
      expect(res.text).toBe('short and stout')
      expect(res.headers.get('x-upstream')).toBe('yes')
      expect(res.headers.get('x-secret-hop')).toBeNull()
      expect(res.headers.get('content-security-policy')).toBeNull() // the upstream's answer, not the gateway's
    } finally {
      a.setHandler((req, res, body) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ instance: 'a', method: req.method, url: req.url, bytes: body.length }))
      })
    }
  })

  it('applies the route auth policy as flows do', async () => {
    const anon = await call(base, '/api/items/1')
    expect(anon.status).toBe(401)
    expect(anon.json()).toMatchObject({ success: false, errorCode: 'UNAUTHORIZED' })
    const tokens = createTokenService(testConfig(nats.url))
    const customer = tokens.sign({ sub: 'c1', role: 'customer' }).token
    const admin = tokens.sign({ sub: 'a1', role: 'admin' }).token
    const ok = await call(base, '/api/items/1', { headers: { authorization: `Bearer ${customer}` } })
    expect(ok.status).toBe(200)
    // The upstream sees the credentials the gateway checked.
    expect(a.seen.at(-1)!.headers.authorization).toBe(`Bearer ${customer}`)
    expect((await call(base, '/api/admin-only/x', { headers: { authorization: `Bearer ${customer}` } })).status).toBe(403)
    expect((await call(base, '/api/admin-only/x', { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200)
  })

  it('forwards HEAD and OPTIONS, and answers 405 for a method the route does not take', async () => {
    const head = await fetch(`${base}/api/products/x`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(a.seen.at(-1)!.method).toBe('HEAD')
    const options = await call(base, '/api/products/x', { method: 'OPTIONS' })
    expect(options.status).toBe(200)
    expect(a.seen.at(-1)!.method).toBe('OPTIONS')
    const post = await call(base, '/api/items/1', { method: 'POST', body: 'x' })
    expect(post.status).toBe(405)
    expect(post.json()).toMatchObject({ errorCode: 'METHOD_NOT_ALLOWED' })
  })
})
