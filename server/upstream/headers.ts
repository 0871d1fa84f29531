// Headers across the proxy, both ways. Hop-by-hop fields (RFC 9110 §7.6.1) and those the
// Connection header names are dropped; the gateway's own forwarding fields are set after that, so
// no client can name them in Connection to have them removed (the known hop-by-hop abuse).
import type { IncomingHttpHeaders } from 'node:http'

/** Never forwarded: connection-specific (RFC 9110 §7.6.1, plus the legacy ones every proxy drops). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // The gateway answered any 100-continue itself; undici refuses to send it on.
  'expect',
])

/** The gateway sets these itself on the way up: a client's own values never pass. */
const SET_BY_GATEWAY = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-request-id', 'traceparent', 'tracestate'])

/**
 * Fields a Connection header may not remove: the upstream must see the credentials the gateway
 * checked, and the framing of the body it forwards.
 */
const NOT_NOMINABLE = new Set(['authorization', 'content-length', 'content-type', 'cookie'])

/** The field names a Connection header nominates (lower case), or undefined when there are none. */
export function nominated(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined
  const text = Array.isArray(connection) ? connection.join(',') : connection
  let out: Set<string> | undefined
  for (const raw of text.split(',')) {
    const name = raw.trim().toLowerCase()
    if (name === '' || name === 'close' || name === 'keep-alive' || NOT_NOMINABLE.has(name)) continue
    ;(out ??= new Set()).add(name)
  }
  return out
}

export interface Forwarding {
  /** X-Forwarded-For to send (the client's chain when the peer is a trusted proxy, else the peer). */
  forwardedFor: string
  forwardedProto: string
  forwardedHost: string | undefined
  requestId: string
  traceparent: string
  tracestate: string | undefined
}

/** The request headers for the upstream. */
export function requestHeaders(incoming: IncomingHttpHeaders, strip: ReadonlySet<string>, fwd: Forwarding): Record<string, string | string[]> {
  const named = nominated(incoming.connection)
  const out: Record<string, string | string[]> = {}
  for (const key in incoming) {
    if (HOP_BY_HOP.has(key) || SET_BY_GATEWAY.has(key) || strip.has(key) || named?.has(key)) continue
    const value = incoming[key]
    if (value !== undefined) out[key] = value
  }
  out['x-forwarded-for'] = fwd.forwardedFor
  out['x-forwarded-proto'] = fwd.forwardedProto
  if (fwd.forwardedHost !== undefined) out['x-forwarded-host'] = fwd.forwardedHost
  out['x-request-id'] = fwd.requestId
  out.traceparent = fwd.traceparent
  if (fwd.tracestate !== undefined) out.tracestate = fwd.tracestate
  return out
}

/**
 * The upstream's answer headers for the client: hop-by-hop and stripped fields out, then the
 * gateway's own (trace and request ids, rate-limit and CORS fields) over them.
 */
export function responseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  strip: ReadonlySet<string>,
  gateway: Record<string, unknown>,
  skipGateway: ReadonlySet<string>,
): Record<string, string | string[]> {
  const named = nominated(upstream.connection)
  const out: Record<string, string | string[]> = {}
  for (const key in upstream) {
    if (HOP_BY_HOP.has(key) || strip.has(key) || named?.has(key)) continue
    const value = upstream[key]
    if (value !== undefined) out[key] = value
  }
  for (const key in gateway) {
    if (skipGateway.has(key)) continue
    const value = gateway[key]
    if (typeof value === 'string' || typeof value === 'number') out[key] = String(value)
    else if (Array.isArray(value)) out[key] = value.map(String)
  }
  return out
}
