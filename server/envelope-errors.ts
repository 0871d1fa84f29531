// The one edge error handler: every failure, from Fastify itself, a hook, a route or a flow reply,
// leaves as the envelope. Deliberate errors pass through; anything unexpected is masked and logged
// once with the request id.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { errorEnvelope, JSON_TYPE } from '../lib/envelope.js'
import type { ErrorObject } from 'ajv'
import { codeForStatus, errors, FlowgateError, type ErrorCode } from '../lib/errors.js'
import { ajvFieldErrors } from '../lib/validation.js'

// Fastify's own errors that a client causes, by their code.
const FASTIFY_CODES: ReadonlyMap<string, [ErrorCode, string]> = new Map<string, [ErrorCode, string]>([
  ['FST_ERR_CTP_BODY_TOO_LARGE', ['PAYLOAD_TOO_LARGE', 'Request body is larger than the limit']],
  ['FST_ERR_CTP_INVALID_MEDIA_TYPE', ['UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json']],
  ['FST_ERR_CTP_EMPTY_JSON_BODY', ['VALIDATION_ERROR', 'Body is empty but content-type is application/json']],
  ['FST_ERR_CTP_INVALID_JSON_BODY', ['VALIDATION_ERROR', 'Malformed JSON body']],
  ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', ['VALIDATION_ERROR', 'Content-Length does not match the body']],
  ['FST_ERR_CTP_INVALID_TYPE', ['UNSUPPORTED_MEDIA_TYPE', 'Invalid content type']],
  ['FST_ERR_BAD_URL', ['NOT_FOUND', 'Malformed URL']],
  ['FST_ERR_ASYNC_CONSTRAINT', ['NOT_FOUND', 'No such route']],
])

export function toEdgeError(err: unknown): { error: FlowgateError; unexpected: boolean } {
  if (err instanceof FlowgateError) return { error: err, unexpected: err.code === 'INTERNAL_ERROR' }
  const fe = err as Partial<FastifyError> & { status?: number }
  // A route's own schema (the ops and admin routes declare theirs with TypeBox) refused the request.
  if (fe.code === 'FST_ERR_VALIDATION' && fe.validation) {
    const context = fe.validationContext ?? ''
    const detailed = ajvFieldErrors(fe.validation as ErrorObject[]).map((d) => ({ ...d, field: d.field || context }))
    return { error: errors.validation(detailed), unexpected: false }
  }
  const known = typeof fe.code === 'string' ? FASTIFY_CODES.get(fe.code) : undefined
  if (known) return { error: new FlowgateError(known[0], known[1], { stack: false }), unexpected: false }
  // JSON.parse failures from the body parser carry a 400 status and no Fastify code.
  if (err instanceof SyntaxError && fe.statusCode === 400) {
    return { error: new FlowgateError('VALIDATION_ERROR', 'Malformed JSON body', { stack: false }), unexpected: false }
  }
  const status = fe.statusCode ?? fe.status
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { error: new FlowgateError(codeForStatus(status), undefined, { stack: false }), unexpected: false }
  }
  return { error: new FlowgateError('INTERNAL_ERROR', undefined, { stack: false }), unexpected: true }
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const { error, unexpected } = toEdgeError(err)
  if (unexpected) request.log.error({ err }, 'unexpected error')
  request.errorCode = error.code
  if (error.headers) reply.headers(error.headers)
  return reply.code(error.status).type(JSON_TYPE).send(errorEnvelope(error, request.traceId))
}
