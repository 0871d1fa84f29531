// Upgrade requests enter the gateway here. Node hands them to the server's `upgrade` event, apart
// from its request handler; they are given a response object on their socket and sent through
// Fastify's router (as @fastify/websocket does), so they meet the same hooks as any request: trace
// id, blocklist, rate limit, auth, and the envelope for every refusal, with no upgrade. Only a proxy
// route with `websocket` takes a WebSocket upgrade (./ws-proxy.ts); any other path refuses it.
// A browser cannot set Authorization on a WebSocket: the token may come in a configured query
// parameter or offered subprotocol, which is taken out here, before anything can log or forward it.
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Config } from '../../lib/config.js'
import { errors } from '../../lib/errors.js'
import type { Logger } from '../../lib/logger.js'
import { serveOnSocket, type UpgradeListener } from '../http-server.js'
import type { Target } from '../resolver.js'

/** What the upgrade event gave, kept on the raw request. */
export interface UpgradeState {
  socket: Duplex
  head: Buffer
  /** `Upgrade: websocket` (other protocols are served as plain HTTP, or refused with a body). */
  websocket: boolean
  /** The Authorization header was made from a query or subprotocol token: the upstream never gets it. */
  tokenCarried: boolean
}

const UPGRADE = Symbol('flowgate.upgrade')
type WithUpgrade = IncomingMessage & { [UPGRADE]?: UpgradeState }

/** The upgrade a request arrived with, or undefined for an ordinary request. */
export function upgradeOf(req: IncomingMessage): UpgradeState | undefined {
  return (req as WithUpgrade)[UPGRADE]
}

/** The server's `upgrade` listener: the request goes through Fastify's router with a response on its socket. */
export function createUpgradeListener(app: FastifyInstance, config: Pick<Config, 'wsAuthQueryParam' | 'wsAuthSubprotocolPrefix'>, log: Logger): UpgradeListener {
  return function onUpgrade(req, socket, head) {
    // A reset during the handshake must not become an uncaught error.
    socket.on('error', () => socket.destroy())
    const websocket = isWebSocketUpgrade(req.headers.upgrade)
    const state: UpgradeState = { socket, head, websocket, tokenCarried: false }
    if (websocket) state.tokenCarried = takeToken(req, config)
    ;(req as WithUpgrade)[UPGRADE] = state
    try {
      serveOnSocket(req, socket, app.routing)
    } catch (err) {
      log.warn({ err }, 'upgrade request could not be routed')
      socket.destroy()
    }
  }
}

/**
 * An onRequest hook after the edge guard: a WebSocket upgrade is taken only by a proxy route that
 * allows it (404 elsewhere); another protocol's upgrade is served as plain HTTP unless it carries a
 * body, which a connection handed over for an upgrade cannot read (400).
 */
export function registerUpgradeGuard(app: FastifyInstance, resolve: (request: FastifyRequest) => Target | undefined): void {
  app.addHook('onRequest', function guardUpgrade(request: FastifyRequest, _reply, done: HookHandlerDoneFunction) {
    const state = upgradeOf(request.raw)
    if (state === undefined) return done()
    if (!state.websocket) {
      const h = request.headers
      const body = h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
      return done(body ? errors.validation([{ field: 'upgrade', message: `an upgrade to ${String(h.upgrade).slice(0, 32)} with a body is not served` }]) : undefined)
    }
    if (request.method !== 'GET') return done(errors.validation([{ field: 'method', message: 'a WebSocket upgrade is a GET' }]))
    const target = resolve(request)
    if (target?.kind !== 'proxy' || target.route.spec.websocket === undefined) return done(errors.notFound(`No WebSocket endpoint at ${request.urlPath.slice(0, 200)}`))
    done()
  })
}

export function isWebSocketUpgrade(upgrade: string | undefined): boolean {
  if (upgrade === undefined) return false
  for (const p of upgrade.split(',')) if (p.trim().toLowerCase() === 'websocket') return true
  return false
}

/**
 * Takes a bearer token out of the configured query parameter or subprotocol (both removed; the
 * rest of the query stays byte for byte) and, when no Authorization header came, makes it one.
 * True when the header was made here.
 */
export function takeToken(req: IncomingMessage, config: Pick<Config, 'wsAuthQueryParam' | 'wsAuthSubprotocolPrefix'>): boolean {
  let token: string | undefined
  const param = config.wsAuthQueryParam
  const url = req.url ?? '/'
  const q = url.indexOf('?')
  if (param !== '' && q !== -1) {
    const kept: string[] = []
    for (const pair of url.slice(q + 1).split('&')) {
      const eq = pair.indexOf('=')
      const name = safeDecode(eq === -1 ? pair : pair.slice(0, eq))
      if (name !== param) {
        kept.push(pair)
        continue
      }
      token ??= safeDecode(eq === -1 ? '' : pair.slice(eq + 1)) ?? ''
    }
    req.url = kept.length === 0 ? url.slice(0, q) : `${url.slice(0, q)}?${kept.join('&')}`
  }
  const prefix = config.wsAuthSubprotocolPrefix
  const offered = req.headers['sec-websocket-protocol']
  if (prefix !== '' && offered !== undefined) {
    const kept: string[] = []
    for (const raw of offered.split(',')) {
      const p = raw.trim()
      if (p.startsWith(prefix)) token ??= p.slice(prefix.length)
      else if (p !== '') kept.push(p)
    }
    if (kept.length === 0) delete req.headers['sec-websocket-protocol']
    else req.headers['sec-websocket-protocol'] = kept.join(', ')
  }
  if (token === undefined || token === '' || req.headers.authorization !== undefined) return false
  // A token with bytes a header cannot hold is refused as a bad token, not written as one.
  req.headers.authorization = /^[\x21-\x7e]{1,8192}$/.test(token) ? `Bearer ${token}` : 'Bearer invalid'
  return true
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}
