import { describe, expect, it } from 'vitest'
import { FlowgateError } from '../../lib/errors.js'
import { checkHandshake, handshakeHeaders } from './ws-handshake.js'

const good = { upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }
const refusal = (headers: Record<string, string>) => {
  try {
    checkHandshake(headers)
  } catch (err) {
    return err as FlowgateError
  }
  return undefined
}

describe('WebSocket handshake checks', () => {
  it('returns the offered subprotocols of a good handshake', () => {
    expect(checkHandshake(good)).toEqual([])
    expect(checkHandshake({ ...good, 'sec-websocket-protocol': 'graphql-transport-ws,  chat ' })).toEqual(['graphql-transport-ws', 'chat'])
  })

  it('refuses a bad version with Sec-WebSocket-Version: 13, a bad key, a bad or repeated subprotocol, an Upgrade list', () => {
    expect(refusal({ ...good, 'sec-websocket-version': '8' })).toMatchObject({ status: 400, headers: { 'sec-websocket-version': '13' } })
    for (const key of ['', 'short', 'dGhlIHNhbXBsZSBub25jZQ', 'dGhlIHNhbXBsZSBub25jZR==', '__proto__']) {
      expect(refusal({ ...good, 'sec-websocket-key': key }), key).toMatchObject({ code: 'VALIDATION_ERROR', detailed: [{ field: 'sec-websocket-key' }] })
    }
    for (const p of ['a b', 'a,,b', 'x, x', 'é', 'a'.repeat(129), Array.from({ length: 33 }, (_, i) => `p${i}`).join(',')]) {
      expect(refusal({ ...good, 'sec-websocket-protocol': p }), p).toMatchObject({ detailed: [{ field: 'sec-websocket-protocol' }] })
    }
    expect(refusal({ ...good, upgrade: 'websocket, h2c' })).toMatchObject({ detailed: [{ field: 'upgrade' }] })
  })

  it('passes the upstream 101 fields on without the handshake and hop-by-hop ones, the gateway ids over them', () => {
    const lines = handshakeHeaders(
      { 'set-cookie': ['a=1', 'b=2'], 'sec-websocket-accept': 'x', 'sec-websocket-protocol': 'chat', connection: 'Upgrade', upgrade: 'websocket', 'x-secret': 's', 'x-trace-id': 'theirs' },
      new Set(['x-secret']),
      { 'x-trace-id': 'ours', 'x-request-id': 'r1', 'x-frame-options': 'DENY' },
      new Set(['x-frame-options']),
    )
    expect(lines).toEqual(['set-cookie: a=1', 'set-cookie: b=2', 'x-trace-id: ours', 'x-request-id: r1'])
  })
})
