// A GraphQL route: a proxy route whose GET and POST requests the gateway reads before forwarding.
// It parses the document once (./graphql-document.ts) to learn the operation that runs, refuses what
// breaks the route's limits in the GraphQL-over-HTTP shape (./graphql-answer.ts), and forwards the
// rest as any proxy request (same balancer, breaker, retries, headers, streamed answer), a POST's body
// as the exact bytes it read. A mutation is never retried; a query may be (`retryQueries`). The
// operation labels the metrics, the log line, the span and the completion event.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { mediaType } from '../catch-all.js'
import type { ProxyTarget } from '../resolver.js'
import { bodyLength, readLimited } from './body.js'
import { GRAPHQL_RESPONSE_TYPE, refusalAnswer } from './graphql-answer.js'
import { analyseDocument, refusal, type Operation, type Refusal } from './graphql-document.js'
import type { GraphqlMetrics } from './graphql-metrics.js'
import { paramsFromBody, paramsFromSearch, searchHasParams, type GraphqlParams } from './graphql-request.js'
import { MAX_OPERATION_NAME, type GraphqlSettings } from './graphql-settings.js'
import { forward, type ProxyDeps, type RouteKindHandler } from './proxy.js'

/** Longest document recorded on a span when a route asks for it. */
const MAX_RECORDED_DOCUMENT = 8192

export function createGraphqlHandler(deps: ProxyDeps, metrics: GraphqlMetrics): RouteKindHandler {
  return async function graphqlRequest(request, reply, target, path) {
    const settings = target.route.spec.graphql!
    const method = request.method
    const url = request.url
    const q = url.indexOf('?')
    const search = q === -1 ? '' : url.slice(q + 1)
    if (method === 'GET') {
      const params = paramsFromSearch(search)
      // No GraphQL parameters at all (a GraphiQL page): nothing runs, it passes as any proxy request.
      if (params === undefined) return forward(request, reply, target, path, bodyLength(request), deps)
      if ('refused' in params) return refuse(request, reply, target, params, false)
      return operate(request, reply, target, path, settings, params, undefined)
    }
    if (method !== 'POST') return forward(request, reply, target, path, bodyLength(request), deps)

    const type = request.headers['content-type']
    // UTF-8 is what the gateway decodes; an upstream told another charset could read other text.
    if (mediaType(type) !== 'application/json' || !isUtf8(type!)) {
      return refuse(request, reply, target, refusal('UNSUPPORTED_MEDIA_TYPE', 'Send the GraphQL request as application/json in UTF-8'), true)
    }
    if (searchHasParams(search)) return refuse(request, reply, target, refusal('INVALID_REQUEST', 'A POST carries its GraphQL parameters in the body, not the URL'), true)
    const limit = target.route.spec.bodyLimitBytes
    const length = bodyLength(request)
    if (length === -1) return refuse(request, reply, target, refusal('BAD_REQUEST', 'The body is empty'), false)
    const tooLarge = refusal('PAYLOAD_TOO_LARGE', `Request body is larger than ${limit} bytes`)
    // Infinity: chunked, its length known once read (readLimited stops at the limit).
    if (Number.isFinite(length) && length > limit) return refuse(request, reply, target, tooLarge, true)
    let body: Buffer | undefined
    try {
      body = await readLimited(request.raw, limit)
    } catch {
      // The client went away mid-upload: nobody to answer.
      reply.hijack()
      reply.raw.destroy()
      return reply
    }
    if (body === undefined) return refuse(request, reply, target, tooLarge, true)
    const params = paramsFromBody(body.toString('utf8'))
    if ('refused' in params) return refuse(request, reply, target, params, false)
    return operate(request, reply, target, path, settings, params, body)
  }

  function operate(request: FastifyRequest, reply: FastifyReply, target: ProxyTarget, path: string, settings: GraphqlSettings, params: GraphqlParams, body: Buffer | undefined): FastifyReply {
    const analysis = analyseDocument(params.query, params.operationName, settings)
    if ('refused' in analysis) return refuse(request, reply, target, analysis, false)
    const op = analysis.operation
    noteOperation(request, target, op, false)
    if (request.span?.recording) {
      request.span.setAttributes({
        'graphql.operation.type': op.type,
        'graphql.operation.name': request.graphql!.name,
        'graphql.document': settings.recordDocument ? params.query.slice(0, MAX_RECORDED_DOCUMENT) : undefined,
      })
    }
    // GraphQL over HTTP: a mutation is never run for a GET.
    if (request.method === 'GET' && op.type === 'mutation') {
      reply.header('allow', 'POST')
      return refuse(request, reply, target, refusal('METHOD_NOT_ALLOWED', 'A mutation must be sent with POST'), false)
    }
    const safe = op.type === 'query' ? (settings.retryQueries ? true : undefined) : false
    return forward(request, reply, target, path, body === undefined ? bodyLength(request) : body.length, deps, { body, safe })
  }

  function noteOperation(request: FastifyRequest, target: ProxyTarget, op: Operation | undefined, refused: boolean): void {
    const route = target.template
    const name = op?.name !== undefined && op.name.length <= MAX_OPERATION_NAME ? op.name : undefined
    const settings = target.route.spec.graphql!
    request.graphql = {
      upstream: target.route.upstream.name,
      route,
      type: op?.type,
      name,
      label: metrics.nameLabel(route, settings.maxOperationNames, op?.type, op?.name),
      refused,
    }
  }

  /** The gateway's own answer; `unread`: the body was left (partly) unread, so the connection closes after it. */
  function refuse(request: FastifyRequest, reply: FastifyReply, target: ProxyTarget, r: Refusal, unread: boolean): FastifyReply {
    if (request.graphql === undefined) noteOperation(request, target, r.operation, true)
    else request.graphql.refused = true
    const answer = refusalAnswer(r)
    request.errorCode = answer.errorCode
    if (unread) reply.header('connection', 'close')
    return reply.code(answer.status).header('content-type', GRAPHQL_RESPONSE_TYPE).send(answer.body)
  }
}

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i

/** No charset parameter (UTF-8 is then assumed), or UTF-8. */
function isUtf8(type: string): boolean {
  const charset = CHARSET.exec(type)?.[1]?.toLowerCase()
  return charset === undefined || charset === 'utf-8' || charset === 'utf8'
}
