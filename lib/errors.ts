// The error catalog: every code, its HTTP status and default message, declared once. Call sites
// throw by name (`throw errors.notFound('Unknown SKU')`); a flow's failure reply is revived into
// the same class, so the gateway handles local and remote failures one way.

export interface FieldError {
  field: string
  message: string
}

export const ERROR_CATALOG = {
  VALIDATION_ERROR: { status: 400, message: 'Invalid input', retryable: false },
  UNAUTHORIZED: { status: 401, message: 'Authentication required', retryable: false },
  FORBIDDEN: { status: 403, message: 'Not allowed', retryable: false },
  IP_BLOCKED: { status: 403, message: 'Client address is blocked', retryable: false },
  NOT_FOUND: { status: 404, message: 'Not found', retryable: false },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed', retryable: false },
  REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time', retryable: true },
  CONFLICT: { status: 409, message: 'Already exists', retryable: false },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'Payload too large', retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type', retryable: false },
  RATE_LIMITED: { status: 429, message: 'Too many requests', retryable: true },
  HEADERS_TOO_LARGE: { status: 431, message: 'Request headers are too large', retryable: false },
  INTERNAL_ERROR: { status: 500, message: 'Internal error', retryable: false },
  BAD_GATEWAY: { status: 502, message: 'Bad gateway', retryable: true },
  SERVICE_UNAVAILABLE: { status: 503, message: 'Service unavailable', retryable: true },
  GATEWAY_TIMEOUT: { status: 504, message: 'Deadline exceeded', retryable: true },
} as const

export type ErrorCode = keyof typeof ERROR_CATALOG

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CATALOG, code)
}

export class FlowgateError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly retryable: boolean
  readonly detailed: FieldError[] | undefined
  /** Extra response headers (e.g. Retry-After). */
  readonly headers: Record<string, string> | undefined

  constructor(
    code: ErrorCode,
    message?: string,
    opts: { detailed?: FieldError[]; cause?: unknown; headers?: Record<string, string>; stack?: boolean } = {},
  ) {
    const entry = ERROR_CATALOG[code]
    // Expected, frequent failures (4xx, 503) skip stack capture: it is the costliest part of an Error.
    const limit = Error.stackTraceLimit
    if (opts.stack === false) Error.stackTraceLimit = 0
    super(message ?? entry.message, opts.cause === undefined ? undefined : { cause: opts.cause })
    if (opts.stack === false) Error.stackTraceLimit = limit
    this.name = 'FlowgateError'
    this.code = code
    this.status = entry.status
    this.retryable = entry.retryable
    this.detailed = opts.detailed
    this.headers = opts.headers
  }
}

type Options = { detailed?: FieldError[]; headers?: Record<string, string>; cause?: unknown }
const quiet = (code: ErrorCode) => (message?: string, opts?: Options) => new FlowgateError(code, message, { ...opts, stack: false })
/** Unexpected failures keep their stack (logged once, never sent). */
const loud = (code: ErrorCode) => (message?: string, opts?: Options) => new FlowgateError(code, message, opts)

/** Throw by name. */
export const errors = {
  validation: (detailed: FieldError[], message?: string) =>
    new FlowgateError('VALIDATION_ERROR', message, { detailed, stack: false }),
  unauthorized: quiet('UNAUTHORIZED'),
  forbidden: quiet('FORBIDDEN'),
  ipBlocked: quiet('IP_BLOCKED'),
  notFound: quiet('NOT_FOUND'),
  methodNotAllowed: quiet('METHOD_NOT_ALLOWED'),
  requestTimeout: quiet('REQUEST_TIMEOUT'),
  conflict: quiet('CONFLICT'),
  payloadTooLarge: quiet('PAYLOAD_TOO_LARGE'),
  unsupportedMediaType: quiet('UNSUPPORTED_MEDIA_TYPE'),
  rateLimited: quiet('RATE_LIMITED'),
  headersTooLarge: quiet('HEADERS_TOO_LARGE'),
  internal: loud('INTERNAL_ERROR'),
  badGateway: quiet('BAD_GATEWAY'),
  serviceUnavailable: quiet('SERVICE_UNAVAILABLE'),
  gatewayTimeout: quiet('GATEWAY_TIMEOUT'),
} as const

/**
 * Messages a 5xx answer may carry to a client besides the catalog's defaults: what Flowgate's own
 * parts say, and nothing else. A flow's reply crosses an untrusted bus, and a failing service's
 * message may hold internals (a database URL, a host); any other 5xx message is masked.
 */
const PUBLIC_5XX_MESSAGES = new Set([
  'Worker overloaded',
  'Caller went away',
  'Database unavailable',
  'Accounts are not configured on this worker',
])

/** Whether a 5xx message may reach a client as it is: the catalog's own for its code, or one of Flowgate's. */
export function isPublicMessage(code: ErrorCode, message: string): boolean {
  return ERROR_CATALOG[code].message === message || PUBLIC_5XX_MESSAGES.has(message)
}

/** The catalog's code for an HTTP status; a status the catalog lacks maps to the generic code of its class. */
export function codeForStatus(status: number): ErrorCode {
  for (const code of Object.keys(ERROR_CATALOG) as ErrorCode[]) if (ERROR_CATALOG[code].status === status) return code
  return status >= 500 ? 'INTERNAL_ERROR' : 'VALIDATION_ERROR'
}

/** A thrown value as a FlowgateError; anything unexpected becomes INTERNAL_ERROR with the original as cause. */
export function toFlowgateError(err: unknown): FlowgateError {
  if (err instanceof FlowgateError) return err
  return new FlowgateError('INTERNAL_ERROR', undefined, { cause: err })
}
