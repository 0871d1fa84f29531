// The trace routes (admin): GET /traces/:traceId, one request's steps read back from the trace
// stream, as a waterfall page for a browser (Accept: text/html) or JSON for API clients; GET /traces,
// the recent requests of this gateway (its ring), filtered by flow, status and minimum duration.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { NatsConnection } from 'nats'
import type { TokenService } from '../lib/auth.js'
import { JSON_TYPE, successEnvelope } from '../lib/envelope.js'
import { errors, FlowgateError } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import { readTrace, type TraceRead } from '../lib/trace-stream.js'
import { buildWaterfall, type RequestSpan } from '../lib/waterfall.js'
import { TraceId } from '../schemas/envelope.js'
import { adminHook } from './caller.js'
import type { RecentRequests } from './recent.js'
import { PAGE_CSP, TRACE_CSS_PATH, traceCss, traceHtml, traceListHtml, traceMessageHtml } from './trace-page.js'

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
  const pageHeaders = { ...deps.documentHeaders, 'content-security-policy': PAGE_CSP, 'cache-control': 'no-store' }
  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const adminOnly = adminHook(tokens)
  const html = (reply: FastifyReply, status: number, body: string) => reply.code(status).headers(pageHeaders).type(HTML_TYPE).send(body)

  routes.get(TRACE_CSS_PATH, async (_request, reply) =>
    reply.headers({ 'cache-control': 'public, max-age=3600', 'x-content-type-options': 'nosniff' }).type('text/css; charset=utf-8').send(css),
  )

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
    if (read.steps.length === 0) {
      const error = errors.notFound(`No steps recorded for trace ${traceId}`)
      if (!page) throw error
      request.errorCode = error.code
      return html(reply, 404, traceMessageHtml(traceId, 404, `${error.message} (steps are kept for 15 minutes).`))
    }
    if (!page) return reply.type(JSON_TYPE).send(successEnvelope({ traceId, recorded: read.recorded, steps: read.steps }, 200, request.traceId))
    const served = recent.list({ traceId, limit: 1 })[0]
    const requestSpan: RequestSpan | undefined = served && { ...served }
    return html(reply, 200, traceHtml(buildWaterfall(traceId, read.steps, MAX_PAGE_ROWS, requestSpan), read.recorded, requestSpan))
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
