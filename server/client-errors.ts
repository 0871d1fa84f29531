// Requests refused before the router: by Node's HTTP parser (malformed requests, smuggling shapes,
// headers too large, a request not received in time) and by Fastify (a URL that does not decode).
// They answer as every other gateway error does: the envelope, with a trace id and a request id in
// the body and headers, and one log line carrying them.
import type { Socket } from 'node:net'
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { errorEnvelope, JSON_TYPE } from '../lib/envelope.js'
import { errors, FlowgateError } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import { newRequestId, newTraceId, parseTraceparent } from '../lib/trace-context.js'
import { sendError } from './envelope-errors.js'

/** The catalog error for a parser error code (llhttp's HPE_* and Node's own). */
function parserError(code: string | undefined): FlowgateError {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return errors.requestTimeout()
  if (code === 'HPE_HEADER_OVERFLOW') return errors.headersTooLarge()
  // Bare CR or LF, both Content-Length and Transfer-Encoding, two lengths, a bad chunk: a request
  // read two ways by two servers is how requests are smuggled, so none is guessed at.
  return new FlowgateError('VALIDATION_ERROR', 'Malformed HTTP request', { stack: false })
}

/** Sockets already answered: the pre-bus server and Fastify both listen on one server. */
const answered = new WeakSet<Socket>()

/**
 * The server's `clientError` listener. Writes the answer on the socket and closes it: after a
 * parse error the connection cannot be trusted for a next request. Answers a socket once, and
 * stays silent when the socket is gone or an answer to it already started.
 */
export function createClientErrorHandler(log: Logger) {
  return function answerClientError(err: Error & { code?: string }, socket: Socket): void {
    if (answered.has(socket)) return
    answered.add(socket)
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (!socket.writable || inFlight?.headersSent) {
      socket.destroy()
      return
    }
    const error = parserError(err.code)
    const traceId = newTraceId()
    const requestId = newRequestId()
    const body = JSON.stringify(errorEnvelope(error, traceId))
    log.info({ trace_id: traceId, request_id: requestId, status: error.status, reason: err.code }, 'request refused by the HTTP parser')
    socket.end(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
        `content-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `x-trace-id: ${traceId}\r\nx-request-id: ${requestId}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n` +
        `connection: close\r\n\r\n${body}`,
    )
    socket.destroySoon()
  }
}

// Fastify's own codes for what its router refuses before any hook runs.
const FRAMEWORK_ERRORS: ReadonlyMap<string, () => FlowgateError> = new Map([
  ['FST_ERR_BAD_URL', () => errors.validation([{ field: 'url', message: 'is not valid percent-encoding' }], 'Malformed URL')],
  ['FST_ERR_MAX_PARAM_LENGTH', () => errors.validation([{ field: 'url', message: 'has a path segment over 200 characters' }], 'Malformed URL')],
  ['FST_ERR_ASYNC_CONSTRAINT', () => errors.notFound('No such route')],
])

/**
 * Fastify's `frameworkErrors` handler: no hook has run yet, so the trace id and the id headers are
 * given here before the error handler shapes the envelope.
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const traceId = parseTraceparent(request.headers.traceparent).traceId
  request.traceId = traceId
  reply.header('x-trace-id', traceId)
  reply.header('x-request-id', request.id)
  const answer = FRAMEWORK_ERRORS.get(error.code)?.() ?? error
  request.log.info({ trace_id: traceId, code: error.code }, 'request refused before routing')
  void sendError(request, reply, answer)
}
