// The trace routes (admin): GET /traces/:traceId, one request's steps read back from the trace
// stream, as a waterfall page for a browser (Accept: text/html) or JSON for API clients; GET /traces,
// the recent requests of this gateway (its ring), filtered by flow, status and minimum duration.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { NatsConnection } from 'nats'
import { authorize, identify, type AuthPolicy, type TokenService } from '../lib/auth.js'
import { JSON_TYPE, successEnvelope } from '../lib/envelope.js'
import { errors, FlowgateError } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import { readTrace, type TraceRead } from '../lib/trace-stream.js'
import { buildWaterfall, type RequestSpan } from '../lib/waterfall.js'
import { TraceId } from '../schemas/envelope.js'
import { callerOf, enforcing } from './caller.js'
import { parseForm } from './form-body.js'
import type { RecentRequests } from './recent.js'
import { PAGE_CSP, signInHtml, TRACE_CSS_PATH, traceCss, traceHtml, traceListHtml, traceMessageHtml } from './trace-page.js'

const Format = Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('html')]))
const TraceParams = Type.Object({ traceId: TraceId })
const TraceQuery = Type.Object({ format: Format })
const ListQuery = Type.Object({
  flow: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  status: Type.Optional(Type.Integer({ minimum: 1, maximum: 599, description: 'an exact status, or its class: 5 for 5xx' })),
  minDurationMs: Type.Optional(Type.Number({ minimum: 0, maximum: 3_600_000 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  format: Format,
})

const SessionForm = Type.Object({
  token: Type.String({ maxLength: 4096 }),
  next: Type.Optional(Type.String({ maxLength: 256 })),
})
const SessionQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 256 })) })

/** The cookie a browser signs in with (a copy of the admin token), read by the trace pages only; the token's own expiry still applies. */
const SESSION_COOKIE = 'flowgate_traces'
const SESSION_MAX_AGE_SEC = 3600
const ADMIN: AuthPolicy = { roles: ['admin'] }

/** Rows a page lays out at most; the JSON carries every step read (at most MAX_TRACE_STEPS). */
const MAX_PAGE_ROWS = 500
const HTML_TYPE = 'text/html; charset=utf-8'

export interface TraceRouteDeps {
  nats: NatsConnection
  tokens: TokenService
  log: Logger
  recent: RecentRequests
  /** The document headers (helmet's), in place of the API's on an HTML page. */
  documentHeaders: Readonly<Record<string, string>>
}

export function registerTraceRoutes(app: FastifyInstance, deps: TraceRouteDeps): void {
  const { nats: nc, tokens, log, recent } = deps
  const css = traceCss()
  // same-origin, not no-referrer: with no-referrer a browser posts the sign-in form with `Origin: null`,
  // and the origin check below could not tell this gateway's own form from anyone's.
  const pageHeaders = { ...deps.documentHeaders, 'content-security-policy': PAGE_CSP, 'cache-control': 'no-store', 'referrer-policy': 'same-origin' }
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const html = (reply: FastifyReply, status: number, body: string) => reply.code(status).headers(pageHeaders).type(HTML_TYPE).send(body)

  // Admins only, by bearer token or, for a browser, by the session cookie. A browser that is not
  // signed in gets the sign-in page (with the right status), an API client the envelope.
  const adminOnly = enforcing(ADMIN, function adminOnly(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (request.headers.authorization === undefined) {
      const token = sessionToken(request.headers.cookie)
      if (token !== undefined) request.caller = identify(`Bearer ${token}`, tokens)
    }
    try {
      authorize(ADMIN, callerOf(request, tokens))
      done()
    } catch (err) {
      const format = (request.query as { format?: unknown } | undefined)?.format
      if (!(err instanceof FlowgateError) || !wantsHtml(request, format === 'json' || format === 'html' ? format : undefined)) return done(err as Error)
      request.errorCode = err.code
      html(reply, err.status, signInHtml(request.urlPath, err.code === 'FORBIDDEN' ? 'That token is not an admin\'s.' : undefined))
    }
  })

  routes.get(TRACE_CSS_PATH, async (_request, reply) =>
    reply.headers({ 'cache-control': 'public, max-age=3600', 'x-content-type-options': 'nosniff' }).type('text/css; charset=utf-8').send(css),
  )

  routes.get('/traces/session', { schema: { querystring: SessionQuery } }, async (request, reply) => html(reply, 200, signInHtml(safeNext(request.query.next))))

  // A form post (no script needed): the token is checked, then kept in an HttpOnly, SameSite=Strict cookie.
  app.register(async function sessionForm(scope) {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 8192 }, (_request, body, done) => {
      try {
        done(null, parseForm(body as string))
      } catch (err) {
        done(err as Error, undefined)
      }
    })
    scope.withTypeProvider<TypeBoxTypeProvider>().post('/traces/session', { schema: { body: SessionForm } }, async (request, reply) => {
      // A form posted from another site would sign this browser in with someone else's token.
      const next = safeNext(request.body.next)
      if (!sameOrigin(request)) {
        request.errorCode = 'FORBIDDEN'
        return html(reply, 403, signInHtml(next, 'Sign in from this gateway\'s own page.'))
      }
      const token = request.body.token.trim()
      const caller = identify(`Bearer ${token}`, tokens)
      try {
        authorize(ADMIN, caller)
      } catch (err) {
        const fe = err instanceof FlowgateError ? err : errors.unauthorized()
        request.errorCode = fe.code
        return html(reply, fe.status, signInHtml(next, fe.code === 'FORBIDDEN' ? 'That token is not an admin\'s.' : 'That token is not valid (expired or mistyped?).'))
      }
      const secure = request.protocol === 'https' ? '; Secure' : ''
      return reply
        .code(303)
        .header('set-cookie', `${SESSION_COOKIE}=${token}; Path=/traces; Max-Age=${SESSION_MAX_AGE_SEC}; HttpOnly; SameSite=Strict${secure}`)
        .header('location', next)
        .headers({ 'cache-control': 'no-store' })
        .send()
    })
  })

  routes.get('/traces/:traceId', { onRequest: adminOnly, schema: { params: TraceParams, querystring: TraceQuery } }, async (request, reply) => {
    const { traceId } = request.params
    const page = wantsHtml(request, request.query.format)
    let read: TraceRead
    try {
      read = await readTrace(nc, traceId)
    } catch (err) {
      log.warn({ err }, 'trace read failed')
      const error = errors.serviceUnavailable('Trace stream unavailable')
      if (!page) throw error
      request.errorCode = error.code
      return html(reply, 503, traceMessageHtml(traceId, 503, `${error.message}: the steps of this trace cannot be read now.`))
    }
    if (read.steps.length === 0 && read.runs.length === 0) {
      const error = errors.notFound(`No steps recorded for trace ${traceId}`)
      if (!page) throw error
      request.errorCode = error.code
      return html(reply, 404, traceMessageHtml(traceId, 404, `${error.message} (steps are kept for 15 minutes).`))
    }
    if (!page) return reply.type(JSON_TYPE).send(successEnvelope({ traceId, recorded: read.recorded, runs: read.runs, steps: read.steps }, 200, request.traceId))
    const served = recent.list({ traceId, limit: 1 })[0]
    const requestSpan: RequestSpan | undefined = served && { ...served }
    return html(reply, 200, traceHtml(buildWaterfall(traceId, read.steps, MAX_PAGE_ROWS, requestSpan, read.runs), read.recorded, requestSpan))
  })

  routes.get('/traces', { onRequest: adminOnly, schema: { querystring: ListQuery } }, async (request, reply) => {
    const { format, limit, ...filter } = request.query
    if (filter.status !== undefined && filter.status > 5 && filter.status < 100) {
      throw new FlowgateError('VALIDATION_ERROR', undefined, { detailed: [{ field: 'status', message: 'must be a class (1-5) or a status (100-599)' }], stack: false })
    }
    const entries = recent.list({ ...filter, limit })
    if (wantsHtml(request, format)) return html(reply, 200, traceListHtml(entries, filter))
    const requests = entries.map((e) => ({ ...e, trace: `/traces/${e.traceId}` }))
    return reply.type(JSON_TYPE).send(successEnvelope({ requests }, 200, request.traceId))
  })
}

/** A JWT is base64url parts and dots: a cookie of anything else is ignored. */
const TOKEN_CHARS = /^[A-Za-z0-9_.-]{1,4096}$/

/** The session cookie's token; read by hand because it is one cookie on one family of routes. */
function sessionToken(header: string | undefined): string | undefined {
  if (header === undefined || header.length > 16384) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim()
      return TOKEN_CHARS.test(value) ? value : undefined
    }
  }
  return undefined
}

/** Browsers send Origin with a form post; when they do, it must be this gateway. */
function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin
  if (origin === undefined) return true
  try {
    return new URL(origin).host === request.headers.host
  } catch {
    return false
  }
}

/** Where to go after signing in: a trace page only, never another site. */
function safeNext(next: string | undefined): string {
  return next !== undefined && /^\/traces(\/[0-9a-f]{32})?$/.test(next) ? next : '/traces'
}

/**
 * HTML when asked by `?format=html`, or when the Accept header ranks text/html above JSON (a
 * browser's does); JSON for everything else, API clients sending `*\/*` or nothing included.
 */
export function wantsHtml(request: FastifyRequest, format: 'json' | 'html' | undefined): boolean {
  if (format !== undefined) return format === 'html'
  const accept = request.headers.accept
  if (typeof accept !== 'string' || accept.length > 1024) return false
  let html = 0
  let json = 0
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.trim().toLowerCase().split(';')
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    const q = qParam === undefined ? 1 : Number(qParam.slice(2))
    if (!(q > 0)) continue
    if (type === 'text/html' || type === 'application/xhtml+xml') html = Math.max(html, q)
    else if (type === 'application/json') json = Math.max(json, q)
  }
  return html > 0 && html >= json
}
