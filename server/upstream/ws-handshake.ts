// The HTTP side of a WebSocket handshake through the gateway: what the client's upgrade must carry
// (RFC 6455 §4.2.1; refused with a 400 envelope before any upstream is asked), which of its fields
// stay with the gateway, and which of the upstream's 101 fields reach the client.
import type { IncomingHttpHeaders } from 'node:http'
import { FlowgateError } from '../../lib/errors.js'
import { responseHeaders } from './headers.js'

/** Fields of one handshake's connection: each side's `ws` writes its own. */
export const WS_REQUEST_HEADERS = ['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol'] as const
const WS_RESPONSE_HEADERS = new Set(['sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions', 'content-length'])

/** 16 random bytes in base64, as `ws` checks it. */
const KEY = /^[+/0-9A-Za-z]{21}[AQgw]==$/
/** A subprotocol is an HTTP token (RFC 6455 §4.1, RFC 9110 §5.6.2). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/
const MAX_PROTOCOLS = 32

/** The offered subprotocols, or a 400 for a handshake a WebSocket server must refuse. */
export function checkHandshake(headers: IncomingHttpHeaders): string[] {
  // `ws` takes only the one protocol: a list (`websocket, h2c`) would be refused after the upstream was asked.
  if (headers.upgrade?.trim().toLowerCase() !== 'websocket') throw refuse('upgrade', 'must be websocket alone')
  if (headers['sec-websocket-version'] !== '13') {
    throw new FlowgateError('VALIDATION_ERROR', 'Unsupported WebSocket version', {
      detailed: [{ field: 'sec-websocket-version', message: 'must be 13' }],
      headers: { 'sec-websocket-version': '13' },
      stack: false,
    })
  }
  const key = headers['sec-websocket-key']
  if (key === undefined || !KEY.test(key)) throw refuse('sec-websocket-key', 'must be 16 bytes in base64')
  const offered = headers['sec-websocket-protocol']
  if (offered === undefined) return []
  const protocols: string[] = []
  for (const raw of offered.split(',')) {
    const p = raw.trim()
    if (!TOKEN.test(p)) throw refuse('sec-websocket-protocol', 'each subprotocol must be a token')
    if (protocols.includes(p)) throw refuse('sec-websocket-protocol', `${p} is offered twice`)
    protocols.push(p)
  }
  if (protocols.length > MAX_PROTOCOLS) throw refuse('sec-websocket-protocol', `at most ${MAX_PROTOCOLS} subprotocols`)
  return protocols
}

function refuse(field: string, message: string): FlowgateError {
  return new FlowgateError('VALIDATION_ERROR', 'Invalid WebSocket handshake', { detailed: [{ field, message }], stack: false })
}

/**
 * Header lines for the client's 101: the upstream's own fields (cookies, say) without the
 * handshake's and hop-by-hop ones, then the gateway's (trace and request ids, rate-limit fields).
 */
export function handshakeHeaders(
  upstream: IncomingHttpHeaders,
  strip: ReadonlySet<string>,
  gateway: Record<string, unknown>,
  skipGateway: ReadonlySet<string>,
): string[] {
  const lines: string[] = []
  for (const [name, value] of Object.entries(responseHeaders(upstream, strip, gateway, skipGateway))) {
    if (WS_RESPONSE_HEADERS.has(name)) continue
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`)
  }
  return lines
}
