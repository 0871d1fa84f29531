import { describe, expect, it } from 'vitest'
import { nominated, requestHeaders, responseHeaders } from './headers.js'
import { unsafePath, upstreamPath } from './paths.js'

describe('proxied paths', () => {
  it('refuses what could climb out of the route prefix on the upstream', () => {
    for (const p of ['/api/x/../admin', '/api/x/%2e%2e/admin', '/api/x/%2E./a', '/api/x/.%2e', '/api/x/..;/a', '/api/x/./a', '/api/x/a%2fb', '/api/x/a%5Cb', '/api/x\\..\\a', '/api/x//a', '/api/x/a%00']) {
      expect(unsafePath(p), p).toBeDefined()
    }
    for (const p of ['/api/x/', '/api/x/a.b', '/api/x/...', '/api/x/%41', '/api/x/.well-known/a']) expect(unsafePath(p), p).toBeUndefined()
  })

  it('strips the prefix and keeps the rest and the query as they came', () => {
    expect(upstreamPath('/api/p/1?a=%20', '/api/p', '')).toBe('/1?a=%20')
    expect(upstreamPath('/api/p?a=1', '/api/p', '/v2')).toBe('/v2/?a=1')
    expect(upstreamPath('/api/p', '/api/p', '')).toBe('/')
    expect(upstreamPath('/api/pq', '/api/p', '')).toBeUndefined()
    expect(upstreamPath('/api/%70/1', '/api/p', '')).toBeUndefined()
    expect(upstreamPath('/api/p/1', '', '/base')).toBe('/base/api/p/1')
  })
})

describe('proxied headers', () => {
  const fwd = { forwardedFor: '1.2.3.4', forwardedProto: 'http', forwardedHost: 'gw', requestId: 'r', traceparent: 't', tracestate: undefined }

  it('drops hop-by-hop and nominated fields, never Authorization or the gateway fields', () => {
    expect(nominated('close, X-A , keep-alive,authorization')).toEqual(new Set(['x-a']))
    const out = requestHeaders(
      { connection: 'x-a, x-forwarded-for, authorization', 'x-a': '1', 'keep-alive': 'x', te: 'trailers', 'transfer-encoding': 'chunked', upgrade: 'h2c', authorization: 'Bearer t', 'x-forwarded-for': '9.9.9.9', host: 'evil', expect: '100-continue', 'x-b': '2' },
      new Set(['x-b']),
      fwd,
    )
    expect(out).toEqual({ authorization: 'Bearer t', 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'gw', 'x-request-id': 'r', traceparent: 't' })
  })

  it("puts the gateway's own fields over the upstream's, without the API security set", () => {
    const out = responseHeaders(
      { 'content-type': 'text/html', connection: 'x-hop', 'x-hop': '1', 'transfer-encoding': 'chunked', 'set-cookie': ['a=1', 'b=2'], 'x-trace-id': 'theirs', server: 'x' },
      new Set(['server']),
      { 'x-trace-id': 'ours', 'content-security-policy': "default-src 'none'", 'ratelimit-remaining': 3 },
      new Set(['content-security-policy']),
    )
    expect(out).toEqual({ 'content-type': 'text/html', 'set-cookie': ['a=1', 'b=2'], 'x-trace-id': 'ours', 'ratelimit-remaining': '3' })
  })
})
