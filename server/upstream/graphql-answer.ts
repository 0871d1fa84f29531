// The gateway's own answer to a GraphQL request it does not forward, in the GraphQL-over-HTTP shape
// (`{"errors":[{"message":…,"extensions":{"code":…}}]}`), with the status the GraphQL-over-HTTP
// draft (2026, "Status Codes") gives each failure: a body that is not JSON or a document that does
// not parse 400; a request that is not well formed, a document that fails validation (the route's
// limits) or whose operation cannot be determined 422; a body over its limit 413; a body that is not
// JSON by its type 415; a mutation over GET 405 with `Allow: POST`. Always as
// `application/graphql-response+json`: the draft answers a legacy client (Accept naming only
// `application/json`) with the same statuses and changes the type of 2xx answers only, and lets the
// server choose when Accept names neither.
import type { ErrorCode } from '../../lib/errors.js'
import type { Refusal, RefusalCode } from './graphql-document.js'

export const GRAPHQL_RESPONSE_TYPE = 'application/graphql-response+json; charset=utf-8'

interface RefusalRule {
  status: number
  /** The catalog code the gateway's metrics and logs count it under. */
  errorCode: ErrorCode
}

export const REFUSALS: Readonly<Record<RefusalCode, RefusalRule>> = {
  BAD_REQUEST: { status: 400, errorCode: 'VALIDATION_ERROR' },
  INVALID_REQUEST: { status: 422, errorCode: 'VALIDATION_ERROR' },
  PAYLOAD_TOO_LARGE: { status: 413, errorCode: 'PAYLOAD_TOO_LARGE' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, errorCode: 'UNSUPPORTED_MEDIA_TYPE' },
  METHOD_NOT_ALLOWED: { status: 405, errorCode: 'METHOD_NOT_ALLOWED' },
  GRAPHQL_PARSE_FAILED: { status: 400, errorCode: 'VALIDATION_ERROR' },
  GRAPHQL_VALIDATION_FAILED: { status: 422, errorCode: 'VALIDATION_ERROR' },
  OPERATION_RESOLUTION_FAILURE: { status: 422, errorCode: 'VALIDATION_ERROR' },
}

export interface RefusalAnswer {
  status: number
  body: string
  errorCode: ErrorCode
}

/** The answer to a refused request. */
export function refusalAnswer(r: Refusal): RefusalAnswer {
  const rule = REFUSALS[r.refused]
  const error = { message: r.message, ...(r.locations ? { locations: r.locations } : {}), extensions: { code: r.refused } }
  return { status: rule.status, body: JSON.stringify({ errors: [error] }), errorCode: rule.errorCode }
}
