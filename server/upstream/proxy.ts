// The proxy route: auth and path checks like a flow route, then the request goes to a target the
// balancer picks, through its breaker, streamed both ways with backpressure. A failed attempt is
// retried on another target when retry.ts says so; the upstream's answer, errors included, goes back
// as it is; only the gateway's own failures (no usable target, timeout, refused or broken answer)
// are the envelope. The reply is hijacked: bytes go straight to the socket, Fastify's hooks still
// see the finished response.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { authorize, type TokenService } from '../../lib/auth.js'
import { errorEnvelope, JSON_TYPE } from '../../lib/envelope.js'
import { errors, FlowgateError } from '../../lib/errors.js'
import type { Logger } from '../../lib/logger.js'
import type { Tracing } from '../../lib/telemetry.js'
import { formatTraceparent } from '../../lib/trace-context.js'
import { callerOf } from '../caller.js'
import type { ProxyTarget } from '../resolver.js'
import { bodyLength, limited, readAll, type Body } from './body.js'
import { NotTheTargetsFault, OPEN_BREAKER } from './breaker.js'
import { Exchange, failureOf, UpstreamStatus } from './exchange.js'
import { requestHeaders, responseHeaders, type Forwarding } from './headers.js'
import { isJson, META_MAX_BYTES, withMeta } from './meta.js'
import { statusClass, type UpstreamMetrics } from './metrics.js'
import { unsafePath, upstreamPath } from './paths.js'
import { backoffMs, decideRetry, type Failure } from './retry.js'
import type { UpstreamTarget } from './target.js'
import type { Upstream } from './upstream.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The upstream target that answered a proxied request (`<upstream> <url>`). */
    upstream: string | undefined
  }
}

export interface ProxyDeps {
  tokens: TokenService
  tracing: Tracing
  metrics: UpstreamMetrics
  log: Logger
  /** The API's security headers: sent with the gateway's own answers, not added to an upstream's. */
  securityHeaderNames: ReadonlySet<string>
}

export type ProxyHandler = (request: FastifyRequest, reply: FastifyReply, target: ProxyTarget) => FastifyReply | Promise<FastifyReply>
/** A route kind's own handling after the proxy checks (GraphQL routes: ./graphql.ts); `path` is the upstream path. */
export type RouteKindHandler = (request: FastifyRequest, reply: FastifyReply, target: ProxyTarget, path: string) => Promise<FastifyReply>

export function createProxyHandler(deps: ProxyDeps, graphql?: RouteKindHandler): ProxyHandler {
  return function proxyRequest(request, reply, target) {
    const spec = target.route.spec
    request.routeLabel = target.template
    if (spec.auth !== 'public') authorize(spec.auth, callerOf(request, deps.tokens))
    const unsafe = unsafePath(request.urlPath)
    if (unsafe !== undefined) throw errors.validation([{ field: 'path', message: unsafe }])
    const path = upstreamPath(request.url, spec.stripPrefix, '')
    if (path === undefined) throw errors.validation([{ field: 'path', message: 'the path must spell the route prefix without percent-encoding' }])
    if (spec.graphql !== undefined && graphql !== undefined) return graphql(request, reply, target, path)
    const length = bodyLength(request)
    if (Number.isFinite(length) && length > spec.bodyLimitBytes) throw errors.payloadTooLarge(`Request body is larger than ${spec.bodyLimitBytes} bytes`)
    return forward(request, reply, target, path, length, deps)
  }
}

/** What a route kind learned before forwarding: the body it read already, and whether the request is safe to send twice. */
export interface Held {
  /** The whole body, read by the gateway (sent as it is, and again on a retry). */
  body?: Buffer
  /** Overrides the method's idempotence for retries (a GraphQL query: true; a mutation: false). */
  safe?: boolean
}

/** Hands the request to a ProxyCall: the reply is hijacked, the answer streams from the upstream. */
export function forward(request: FastifyRequest, reply: FastifyReply, target: ProxyTarget, path: string, length: number, deps: ProxyDeps, held?: Held): FastifyReply {
  reply.hijack()
  new ProxyCall(request, reply, target, path, length, deps, held).start()
  return reply
}

/** One proxied request: its attempts, its answer, and what it leaves in the counters. */
export class ProxyCall {
  private readonly upstream: Upstream
  private readonly startedAt = Date.now()
  private readonly deadline: number
  private readonly tried: UpstreamTarget[] = []
  private attempts = 0
  private current: Exchange | undefined
  private body: Body = null
  private replayable = true
  private last: { failure: Failure; error: Error | undefined } | undefined
  private retrying = false
  private finished = false
  private clientGone = false
  private backoff: NodeJS.Timeout | undefined
  private meta: { chunks: Buffer[]; bytes: number; status: number; headers: Record<string, string | string[]> } | undefined

  constructor(
    readonly request: FastifyRequest,
    readonly reply: FastifyReply,
    private readonly target: ProxyTarget,
    private readonly path: string,
    private readonly length: number,
    readonly deps: ProxyDeps,
    private readonly held?: Held,
  ) {
    this.upstream = target.route.upstream
    this.deadline = this.startedAt + (target.route.spec.timeoutMs ?? this.upstream.spec.timeouts.requestMs)
  }

  start(): void {
    this.reply.raw.once('close', this.onClientClose)
    this.upstream.budget.active++
    const spec = this.target.route.spec
    const retries = this.upstream.spec.retry
    if (this.held?.body !== undefined) {
      this.body = this.held.body
      return this.next()
    }
    const mayRetry = retries.retries > 0 && (this.held?.safe ?? (spec.retryNonIdempotent || isIdempotent(this.request.method)))
    if (this.length === -1) return this.next()
    const raw = this.request.raw
    // A small body of a request that may be retried is held (the bounded replay buffer); any other
    // streams through once, so its request is not retried after its first byte has gone.
    if (mayRetry && this.length <= retries.bufferBytes) {
      readAll(raw, this.length).then(
        (buf) => {
          this.body = buf
          this.next()
        },
        () => this.finish(), // the client went away mid-upload: nobody to answer
      )
      return
    }
    this.replayable = false
    this.body = this.length === Number.POSITIVE_INFINITY ? limited(raw, spec.bodyLimitBytes) : raw
    this.next()
  }

  /** Picks a target and makes one attempt; answers when none is left. */
  private next(): void {
    if (this.finished) return
    const now = Date.now()
    if (now >= this.deadline) return this.fail({ failure: 'timeout', error: undefined })
    const t = this.upstream.pick(this.tried, now)
    if (t === undefined) {
      if (this.last === undefined) return this.answer(errors.serviceUnavailable(`No healthy target for upstream ${this.upstream.name}`))
      return this.fail(this.last)
    }
    this.attempts++
    this.tried.push(t)
    // The last target tried names the request in the log ring, failed or not.
    this.request.upstream = t.label
    if (this.attempts > 1) {
      this.deps.metrics.retry(this.upstream.name)
      if (!this.retrying) {
        this.retrying = true
        this.upstream.budget.retrying++
      }
    }
    const ex = new Exchange(this, t, Math.min(this.upstream.spec.timeouts.tryMs, this.deadline - now))
    this.current = ex
    t.breaker.run(ex.start).then(noop, (err: unknown) => {
      // An open breaker refuses before calling: not an attempt, try another target.
      if ((err as { code?: string }).code === OPEN_BREAKER && !ex.started && this.current === ex) {
        this.attempts--
        this.current = undefined
        this.next()
      }
    })
  }

  dispatchOptions(ex: Exchange): Dispatcher.DispatchOptions {
    const r = this.request
    const headers = requestHeaders(r.headers, this.upstream.spec.stripRequestHeaders, forwardingOf(r, ex.span.spanId))
    return {
      origin: ex.t.origin,
      path: ex.t.basePath + this.path,
      method: r.method as Dispatcher.HttpMethod,
      headers,
      // undici streams an async iterable body too (its docs); its types list only Readable.
      body: this.body as Dispatcher.DispatchOptions['body'],
      headersTimeout: ex.tryMs,
      bodyTimeout: this.upstream.spec.timeouts.idleMs,
    }
  }

  /** The answer's status and headers arrived: stream it, or (a retryable status) try elsewhere. */
  onResponse(ex: Exchange, status: number, headers: Record<string, string | string[] | undefined>): void {
    if (ex !== this.current) return ex.abort(new NotTheTargetsFault('superseded'))
    this.observe(ex, status)
    if (status >= 500 && this.upstream.spec.retry.statuses.has(status) && this.retry(ex, 'status', status)) {
      return ex.abort(new UpstreamStatus(status))
    }
    const r = this.request
    const out = responseHeaders(headers, this.upstream.spec.stripResponseHeaders, this.reply.getHeaders(), this.deps.securityHeaderNames)
    if (this.target.route.spec.meta && isJson(out['content-type']) && Number(out['content-length'] ?? 0) <= META_MAX_BYTES && r.method !== 'HEAD') {
      this.meta = { chunks: [], bytes: 0, status, headers: out }
      return
    }
    try {
      this.reply.raw.writeHead(status, out)
    } catch (err) {
      // A header value Node refuses to write (the upstream broke the rules): a broken answer.
      ex.abort(err as Error)
    }
  }

  onData(ex: Exchange, chunk: Buffer): boolean {
    if (ex !== this.current) return true
    if (this.meta !== undefined) {
      this.meta.bytes += chunk.length
      this.meta.chunks.push(chunk)
      if (this.meta.bytes > META_MAX_BYTES) this.flushMeta(false)
      return true
    }
    return this.reply.raw.write(chunk)
  }

  onEnd(ex: Exchange): void {
    if (ex !== this.current) return
    if (this.meta !== undefined) this.flushMeta(true)
    this.reply.raw.end()
    this.finish()
  }

  /** An attempt failed: before the answer started (retry or answer), or mid-answer (cut the client off too). */
  onError(ex: Exchange, err: Error): void {
    if (ex !== this.current || err instanceof NotTheTargetsFault) return
    // The body went over its limit while streaming: the client's fault, answered as such.
    if (err instanceof FlowgateError) return this.answer(err)
    const failure = failureOf(err)
    if (ex.status === 0) this.observe(ex, 0)
    if (this.reply.raw.headersSent || (this.meta !== undefined && ex.status !== 0)) {
      this.deps.log.warn({ upstream: ex.t.label, err: err.message, request_id: this.request.id }, 'upstream answer broke off')
      this.reply.raw.destroy()
      return this.finish()
    }
    this.meta = undefined
    if (this.retry(ex, failure)) return
    this.fail({ failure, error: err })
  }

  /** Schedules a retry if the rules allow one; true when scheduled. */
  private retry(ex: Exchange, failure: Failure, status?: number): boolean {
    const now = Date.now()
    const cfg = this.upstream.spec.retry
    const wait = backoffMs(this.attempts, cfg)
    const decision = decideRetry(cfg, {
      method: this.request.method,
      retryNonIdempotent: this.target.route.spec.retryNonIdempotent,
      safe: this.held?.safe,
      attempts: this.attempts,
      failure,
      status,
      replayable: this.replayable,
      otherTarget: this.upstream.hasOther(this.tried, now),
      budgetAllows: this.retrying || this.upstream.budget.allows(cfg),
      nowMs: now,
      deadlineMs: this.deadline,
      backoffMs: wait,
    })
    if (!decision.retry) {
      if (decision.reason !== 'attempts' && decision.reason !== 'failure') this.deps.metrics.retrySkipped(this.upstream.name, decision.reason)
      return false
    }
    this.last = { failure, error: undefined }
    this.current = undefined
    ex.superseded = true
    if (wait === 0) queueMicrotask(() => this.next())
    else this.backoff = setTimeout(() => this.next(), wait)
    return true
  }

  /** Latency and outcome bookkeeping for one attempt, once. */
  private observe(ex: Exchange, status: number): void {
    const now = Date.now()
    const ms = now - ex.sentAt
    ex.t.ewma.observe(ms, now)
    this.deps.metrics.attempt(this.upstream.name, status === 0 ? 'error' : statusClass(status), ms / 1000)
  }

  /** Outcome for the target's counters and ejection (the breaker counts through the attempt's promise). */
  settle(ex: Exchange, failed: boolean): void {
    const t = ex.t
    t.active--
    const ms = this.upstream.recordOutcome(t, failed, Date.now())
    if (ms > 0) {
      this.deps.metrics.ejection(this.upstream.name)
      this.deps.log.warn({ upstream: this.upstream.name, target: t.url, ejectedForMs: ms }, 'upstream target ejected after consecutive failures')
    }
  }

  private fail(last: { failure: Failure; error: Error | undefined }): void {
    const name = this.upstream.name
    const err =
      last.failure === 'timeout'
        ? errors.gatewayTimeout(`Upstream ${name} did not answer in time`)
        : errors.badGateway(`Upstream ${name} failed after ${this.attempts} attempt${this.attempts === 1 ? '' : 's'}`)
    this.answer(err)
  }

  /** The gateway's own answer: the envelope, with the headers the edge set (security set included). */
  private answer(err: FlowgateError): void {
    const res = this.reply.raw
    this.request.errorCode = err.code
    if (!res.headersSent && !res.destroyed) {
      const body = JSON.stringify(errorEnvelope(err, this.request.traceId))
      const headers = { ...(this.reply.getHeaders() as Record<string, string>), 'content-type': JSON_TYPE, 'content-length': String(Buffer.byteLength(body)) }
      res.writeHead(err.status, headers)
      res.end(body)
    }
    this.finish()
  }

  private flushMeta(complete: boolean): void {
    const m = this.meta!
    this.meta = undefined
    let body: Buffer = Buffer.concat(m.chunks, m.bytes)
    if (complete) {
      const wrapped = withMeta(body, { upstream: this.upstream.name, attempts: this.attempts, latencyMs: Date.now() - this.startedAt, traceId: this.request.traceId })
      if (wrapped !== undefined) {
        body = wrapped
        m.headers['content-length'] = String(body.length)
      }
    }
    this.reply.raw.writeHead(m.status, m.headers)
    this.reply.raw.write(body)
  }

  private readonly onClientClose = () => {
    if (this.reply.raw.writableFinished) return
    this.clientGone = true
    this.current?.abort(new NotTheTargetsFault('client went away'))
    this.finish()
  }

  /** The client closed its connection (mid-upload or mid-answer): nothing that follows is the target's fault. */
  get gone(): boolean {
    return this.clientGone || (this.request.raw.destroyed && !this.request.raw.complete)
  }

  private finish(): void {
    if (this.finished) return
    this.finished = true
    clearTimeout(this.backoff)
    this.reply.raw.removeListener('close', this.onClientClose)
    this.upstream.budget.active--
    if (this.retrying) this.upstream.budget.retrying--
  }
}

/** What the gateway tells an upstream about the request: the forwarding fields, its id, the attempt's span as parent. */
export function forwardingOf(r: FastifyRequest, spanId: string): Forwarding {
  const chain = r.ips
  const peer = r.raw.socket?.remoteAddress ?? ''
  const incoming = r.headers['x-forwarded-for']
  return {
    forwardedFor: chain !== undefined && chain.length > 1 && incoming !== undefined ? `${String(incoming)}, ${peer}` : peer,
    forwardedProto: r.protocol,
    forwardedHost: r.host,
    requestId: r.id,
    traceparent: formatTraceparent(r.traceId, spanId),
    tracestate: r.tracestate,
  }
}

function isIdempotent(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || method === 'PUT' || method === 'DELETE'
}

function noop() {}
