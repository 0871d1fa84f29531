import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { isWebSocketUpgrade, takeToken } from './ws-upgrade.js'

const config = { wsAuthQueryParam: 'access_token', wsAuthSubprotocolPrefix: 'bearer.' }
const req = (url: string, headers: Record<string, string> = {}) => ({ url, headers: { ...headers } }) as unknown as IncomingMessage

describe('upgrade tokens', () => {
  it('takes the token out of the query, keeping the rest byte for byte', () => {
    const r = req('/ws?a=%20x&access_token=abc.def&b=1&access_token=second')
    expect(takeToken(r, config)).toBe(true)
    expect(r.url).toBe('/ws?a=%20x&b=1')
    expect(r.headers.authorization).toBe('Bearer abc.def')
    const only = req('/ws?access_token=t')
    takeToken(only, config)
    expect(only.url).toBe('/ws')
  })

  it('decodes a percent-encoded parameter name and value; a bad encoding is no token', () => {
    const r = req('/ws?access%5Ftoken=a%2Eb')
    expect(takeToken(r, config)).toBe(true)
    expect(r.headers.authorization).toBe('Bearer a.b')
    expect(r.url).toBe('/ws')
    const bad = req('/ws?access_token=%E0%A4%A')
    expect(takeToken(bad, config)).toBe(false)
    expect(bad.url).toBe('/ws')
    expect(bad.headers.authorization).toBeUndefined()
  })

  it('refuses a token a header cannot hold (NUL, spaces, huge) as a bad token, never writing it', () => {
    for (const value of ['a%00b', 'a%20b', 'x'.repeat(9000), '%0d%0aX-Evil:%201']) {
      const r = req(`/ws?access_token=${value}`)
      expect(takeToken(r, config)).toBe(true)
      expect(r.headers.authorization).toBe('Bearer invalid')
    }
  })

  it('takes the token out of the offered subprotocols, keeping the others', () => {
    const r = req('/ws', { 'sec-websocket-protocol': 'graphql-transport-ws, bearer.abc, chat' })
    expect(takeToken(r, config)).toBe(true)
    expect(r.headers['sec-websocket-protocol']).toBe('graphql-transport-ws, chat')
    expect(r.headers.authorization).toBe('Bearer abc')
    const alone = req('/ws', { 'sec-websocket-protocol': 'bearer.abc' })
    takeToken(alone, config)
    expect(alone.headers['sec-websocket-protocol']).toBeUndefined()
  })

  it('lets an Authorization header win, still removing the carried token; does nothing when off', () => {
    const r = req('/ws?access_token=q', { authorization: 'Bearer header', 'sec-websocket-protocol': 'bearer.s' })
    expect(takeToken(r, config)).toBe(false)
    expect(r.headers.authorization).toBe('Bearer header')
    expect(r.url).toBe('/ws')
    expect(r.headers['sec-websocket-protocol']).toBeUndefined()
    const off = req('/ws?access_token=q', { 'sec-websocket-protocol': 'bearer.s' })
    expect(takeToken(off, { wsAuthQueryParam: '', wsAuthSubprotocolPrefix: '' })).toBe(false)
    expect(off.url).toBe('/ws?access_token=q')
    expect(off.headers.authorization).toBeUndefined()
  })

  it('keeps __proto__ and odd query pairs as plain text', () => {
    const r = req('/ws?__proto__=1&&=&access_token=t&constructor')
    takeToken(r, config)
    expect(r.url).toBe('/ws?__proto__=1&&=&constructor')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('recognises websocket in an Upgrade list, any case', () => {
    expect(isWebSocketUpgrade('WebSocket')).toBe(true)
    expect(isWebSocketUpgrade('h2c, websocket')).toBe(true)
    expect(isWebSocketUpgrade('h2c')).toBe(false)
    expect(isWebSocketUpgrade(undefined)).toBe(false)
  })
})
