// A WebSocket upgrade on a proxy route that allows it. After the edge (blocklist, rate limit) it is
// checked like a proxied request (auth, path), then its handshake headers and the socket limits;
// any refusal is a plain HTTP envelope, no upgrade. The upstream handshake comes first, on a target
// the balancer picks (an open socket counts as an active connection of its target), through its
// breaker, on another target after a connection failure; only then is the client answered 101,
// with the subprotocol the upstream picked. A failed upstream handshake is 502 or 504 (503 when no
// target is usable); an HTTP answer instead of 101 is passed on as it is. Then ./ws-relay.ts.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { WebSocketServer } from 'ws'
import { addressKey } from '../../lib/address.js'
import { authorize, type TokenService } from '../../lib/auth.js'
import { errorEnvelope, JSON_TYPE } from '../../lib/envelope.js'
import { errors, FlowgateError } from '../../lib/errors.js'
import type { Logger } from '../../lib/logger.js'
import type { SpanHandle, Tracing } from '../../lib/telemetry.js'
import { callerOf } from '../caller.js'
import type { EventPublisher } from '../events/publisher.js'
import type { HttpMetrics } from '../metrics.js'
import type { RecentRequests } from '../recent.js'
import type { ProxyTarget } from '../resolver.js'
import { NotTheTargetsFault, OPEN_BREAKER } from './breaker.js'
import { UpstreamStatus } from './exchange.js'
import { requestHeaders, responseHeaders } from './headers.js'
import { statusClass, type UpstreamMetrics } from './metrics.js'
import { unsafePath, upstreamPath } from './paths.js'
import { forwardingOf, type ProxyHandler } from './proxy.js'
import type { UpstreamTarget } from './target.js'
import type { Upstream } from './upstream.js'
import { connectUpstream, type Handshake, type HandshakeAttempt } from './ws-connect.js'
import { checkHandshake, handshakeHeaders, WS_REQUEST_HEADERS } from './ws-handshake.js'
import type { WebSocketMetrics } from './ws-metrics.js'
import { reportSocketEnd } from './ws-report.js'
import { Relay, type RelayEnd } from './ws-relay.js'
import type { WebSocketRegistry } from './ws-sockets.js'
import { upgradeOf, type UpgradeState } from './ws-upgrade.js'

export interface WebSocketProxyDeps {
  tokens: TokenService
  tracing: Tracing
  log: Logger
  sockets: WebSocketRegistry
  metrics: WebSocketMetrics
  upstreamMetrics: UpstreamMetrics
  http: HttpMetrics
  events: EventPublisher | undefined
  recent: RecentRequests | undefined
  /** The API's security headers: sent with the gateway's own answers, not added to an upstream's. */
  securityHeaderNames: ReadonlySet<string>
  /** The gateway's limits (WS_*), for routes that set none. */
  idleTimeoutMs: number
  maxMessageBytes: number
}

export function createWebSocketProxyHandler(deps: WebSocketProxyDeps): ProxyHandler {
  return function proxyUpgrade(request, reply, target) {
    const spec = target.route.spec
    request.routeLabel = target.template
    const state = upgradeOf(request.raw)
    if (spec.websocket === undefined || state === undefined) throw errors.notFound(`No WebSocket endpoint at ${request.urlPath.slice(0, 200)}`)
    if (spec.auth !== 'public') authorize(spec.auth, callerOf(request, deps.tokens))
    const unsafe = unsafePath(request.urlPath)
    if (unsafe !== undefined) throw errors.validation([{ field: 'path', message: unsafe }])
    const path = upstreamPath(request.url, spec.stripPrefix, '')
    if (path === undefined) throw errors.validation([{ field: 'path', message: 'the path must spell the route prefix without percent-encoding' }])
    const protocols = checkHandshake(request.headers)
    const key = clientKeyOf(request, deps.tokens)
    const refused = deps.sockets.admit(key)
    if (refused !== undefined) throw refused
    reply.hijack()
    new WebSocketCall(request, reply, target, state, path, protocols, key, deps).start()
    return reply
  }
}

/** Sockets are capped per authenticated subject, else per client address. */
function clientKeyOf(request: FastifyRequest, tokens: TokenService): string {
  const sub = request.headers.authorization === undefined ? undefined : callerOf(request, tokens).principal?.sub
  return sub === undefined ? request.clientAddress || addressKey(request.ip || 'unknown') : `sub:${sub}`
}

/** One upgrade: its handshake attempts, then its open socket until both sides close. */
class WebSocketCall {
  private readonly upstream: Upstream
  private readonly startedAt = Date.now()
  private readonly deadline: number
  private readonly tried: UpstreamTarget[] = []
  private attempt: HandshakeAttempt | undefined
  private lastFailure: 'timeout' | 'connect' | 'broken' | undefined
  private clientGone = false
  private released = false

  constructor(
    private readonly request: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly target: ProxyTarget,
    private readonly state: UpgradeState,
    private readonly path: string,
    private readonly protocols: string[],
    private readonly clientKey: string,
    private readonly deps: WebSocketProxyDeps,
  ) {
    this.upstream = target.route.upstream
    this.deadline = this.startedAt + (target.route.spec.timeoutMs ?? this.upstream.spec.timeouts.requestMs)
  }

  start(): void {
    this.state.socket.once('close', this.onClientClose)
    this.next()
  }

  private get maxMessageBytes(): number {
    return this.target.route.spec.websocket?.maxMessageBytes ?? this.deps.maxMessageBytes
  }

  /** Picks a target and makes one handshake attempt; answers when none is left. */
  private next(): void {
    if (this.clientGone) return this.release()
    const now = Date.now()
    if (now >= this.deadline) return this.answer(errors.gatewayTimeout(`Upstream ${this.upstream.name} did not answer in time`))
    const t = this.upstream.pick(this.tried, now)
    if (t === undefined) {
      if (this.lastFailure === undefined) return this.answer(errors.serviceUnavailable(`No healthy target for upstream ${this.upstream.name}`))
      return this.fail()
    }
    this.tried.push(t)
    this.request.upstream = t.label
    const r = this.request
    const span = this.deps.tracing.startSpan(`GET upstream ${t.upstream}`, r.traceId, r.span?.spanId, { 'flowgate.upstream': t.upstream, 'server.address': t.origin })
    const timeouts = this.upstream.spec.timeouts
    let outcome: Handshake | undefined
    const sentAt = Date.now()
    t.active++
    t.breaker
      .run(async () => {
        this.attempt = connectUpstream(t.origin.replace(/^http/, 'ws') + t.basePath + this.path, {
          protocols: this.protocols,
          headers: this.upstreamHeaders(span),
          connectMs: Math.min(timeouts.connectMs, this.deadline - now),
          tryMs: Math.min(timeouts.tryMs, this.deadline - now),
          maxPayload: this.maxMessageBytes,
          tls: this.upstream.spec.tls,
        })
        outcome = await this.attempt.done
        if (outcome.ok) return
        if (outcome.failure === 'aborted') throw new NotTheTargetsFault(outcome.message)
        if (outcome.failure === 'answer') {
          if (outcome.res.statusCode! >= 500) throw new UpstreamStatus(outcome.res.statusCode!)
          return
        }
        throw new Error(outcome.message)
      })
      .then(
        () => this.handshaken(t, span, sentAt, outcome!),
        (err: unknown) => {
          // An open breaker refuses before calling: not an attempt, try another target.
          if (outcome === undefined && (err as { code?: string }).code === OPEN_BREAKER) {
            t.active--
            span.end()
            return this.next()
          }
          this.handshaken(t, span, sentAt, outcome ?? { ok: false, failure: 'broken', message: String(err) })
        },
      )
  }

  private upstreamHeaders(span: SpanHandle): Record<string, string | string[]> {
    const headers = requestHeaders(this.request.headers, this.upstream.spec.stripRequestHeaders, forwardingOf(this.request, span.spanId))
    for (const name of WS_REQUEST_HEADERS) delete headers[name]
    // A token that came in the query or a subprotocol was for the gateway: the upstream never sees it.
    if (this.state.tokenCarried) delete headers.authorization
    return headers
  }

  private handshaken(t: UpstreamTarget, span: SpanHandle, sentAt: number, h: Handshake): void {
    const now = Date.now()
    const ms = now - sentAt
    t.ewma.observe(ms, now)
    if (h.ok) {
      this.deps.upstreamMetrics.attempt(this.upstream.name, '1xx', ms / 1000)
      return this.open(t, span, h)
    }
    t.active--
    if (h.failure === 'aborted') {
      span.end()
      return this.release()
    }
    if (h.failure === 'answer') {
      const status = h.res.statusCode!
      this.deps.upstreamMetrics.attempt(this.upstream.name, statusClass(status), ms / 1000)
      this.settle(t, status >= 500)
      span.end(status >= 500 ? { code: String(status), message: `upstream answered ${status}` } : undefined)
      return this.passOn(h.res)
    }
    this.deps.upstreamMetrics.attempt(this.upstream.name, 'error', ms / 1000)
    this.settle(t, true)
    span.end({ code: h.failure, message: h.message })
    this.lastFailure = h.failure
    // A refused or reset connection, or a timeout, is tried elsewhere; a broken handshake is not.
    if (h.failure !== 'broken' && this.tried.length <= this.upstream.spec.retry.retries && this.upstream.hasOther(this.tried, now)) {
      this.deps.upstreamMetrics.retry(this.upstream.name)
      return this.next()
    }
    this.fail()
  }

  /** The upstream said 101: the client is answered 101 and the frames start to flow. */
  private open(t: UpstreamTarget, span: SpanHandle, h: Extract<Handshake, { ok: true }>): void {
    const socket = this.state.socket
    const raw = this.reply.raw
    if (this.clientGone || socket.destroyed) {
      h.ws.terminate()
      t.active--
      span.end()
      return this.release()
    }
    socket.removeListener('close', this.onClientClose)
    // From here the socket is the WebSocket's, not the HTTP answer's.
    raw.detachSocket(socket as Parameters<typeof raw.detachSocket>[0])
    const extra = handshakeHeaders(h.headers, this.upstream.spec.stripResponseHeaders, this.reply.getHeaders(), this.deps.securityHeaderNames)
    const wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.maxMessageBytes,
      autoPong: false,
      handleProtocols: () => h.protocol || false,
    })
    wss.on('headers', (lines: string[]) => lines.push(...extra))
    let client: import('ws').WebSocket | undefined
    wss.handleUpgrade(this.request.raw, socket, this.state.head, (ws) => (client = ws))
    span.end()
    if (client === undefined) {
      // The client's connection closed in between: nothing to relay.
      h.ws.terminate()
      t.active--
      return this.release()
    }
    this.settle(t, false)
    t.sockets++
    const name = this.upstream.name
    const route = this.target.template
    this.deps.metrics.opened(name)
    this.deps.http.observe('GET', route, 101, (Date.now() - this.startedAt) / 1000, undefined)
    const relay: Relay = new Relay(client, h.ws, {
      upstream: name,
      idleTimeoutMs: this.target.route.spec.websocket?.idleTimeoutMs ?? this.deps.idleTimeoutMs,
      onEnd: (end) => this.closed(t, relay, end),
    })
    this.deps.sockets.add(relay)
    h.ws.resume()
  }

  /** Both sides are closed: the socket's place, its target's count, and its completion (event, log, span). */
  private closed(t: UpstreamTarget, relay: Relay, end: RelayEnd): void {
    this.deps.sockets.delete(relay)
    this.release()
    t.active--
    t.sockets--
    const durationMs = Date.now() - this.startedAt
    if (end.by === 'upstream' && end.code === 1006) {
      this.deps.log.warn({ upstream: t.label, request_id: this.request.id }, 'upstream WebSocket connection lost')
      this.settle(t, true)
    }
    const unCounted = relay.takeBytes()
    this.deps.metrics.bytes(this.upstream.name, unCounted.in, unCounted.out)
    this.deps.metrics.closed(this.upstream.name, end.code, end.by, durationMs / 1000)
    reportSocketEnd(this.request, this.deps, { route: this.target.template, target: t.label, startedAt: this.startedAt, durationMs, clientKey: this.clientKey, end })
  }

  /** Counts one handshake (or a lost socket) against the target; an ejection is logged and counted. */
  private settle(t: UpstreamTarget, failed: boolean): void {
    const ms = this.upstream.recordOutcome(t, failed, Date.now())
    if (ms > 0) {
      this.deps.upstreamMetrics.ejection(this.upstream.name)
      this.deps.log.warn({ upstream: this.upstream.name, target: t.url, ejectedForMs: ms }, 'upstream target ejected after consecutive failures')
    }
  }

  /** The upstream answered the upgrade with an HTTP answer: it goes to the client as it is. */
  private passOn(res: import('node:http').IncomingMessage): void {
    const raw = this.reply.raw
    if (this.clientGone || raw.destroyed) {
      res.destroy()
      return this.release()
    }
    const headers = responseHeaders(res.headers, this.upstream.spec.stripResponseHeaders, this.reply.getHeaders(), this.deps.securityHeaderNames)
    try {
      raw.writeHead(res.statusCode!, headers)
    } catch {
      res.destroy()
      return this.answer(errors.badGateway(`Upstream ${this.upstream.name} answered the upgrade with headers that cannot be passed on`))
    }
    res.setTimeout(this.upstream.spec.timeouts.idleMs, () => res.destroy())
    res.on('data', (chunk: Buffer) => {
      if (!raw.write(chunk)) {
        res.pause()
        raw.once('drain', () => res.resume())
      }
    })
    res.once('end', () => raw.end())
    res.once('error', () => raw.destroy())
    res.once('close', () => {
      if (!res.complete) raw.destroy()
      this.release()
    })
  }

  private fail(): void {
    const name = this.upstream.name
    const n = this.tried.length
    this.answer(
      this.lastFailure === 'timeout'
        ? errors.gatewayTimeout(`Upstream ${name} did not complete the WebSocket handshake in time`)
        : errors.badGateway(`Upstream ${name} failed the WebSocket handshake after ${n} attempt${n === 1 ? '' : 's'}`),
    )
  }

  /** The gateway's own answer, no upgrade: the envelope with the headers the edge set. */
  private answer(err: FlowgateError): void {
    const res = this.reply.raw
    this.request.errorCode = err.code
    if (!res.headersSent && !res.destroyed) {
      const body = JSON.stringify(errorEnvelope(err, this.request.traceId))
      res.writeHead(err.status, { ...(this.reply.getHeaders() as Record<string, string>), ...err.headers, 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)) })
      res.end(body)
    }
    this.release()
  }

  private readonly onClientClose = () => {
    this.clientGone = true
    this.attempt?.abort()
  }

  private release(): void {
    if (this.released) return
    this.released = true
    this.state.socket.removeListener('close', this.onClientClose)
    this.deps.sockets.release(this.clientKey)
  }
}
