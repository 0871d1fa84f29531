// The gateway's own answer to a GraphQL request it does not forward, in the GraphQL-over-HTTP shape
// (`{"errors":[{"message":…}]}`), its media type and status chosen as the GraphQL-over-HTTP spec says:
// - Accept names `application/graphql-response+json`: that type; a request that is not well formed,
//   a document that does not parse or fails validation (the route's limits, the choice of operation)
//   is a 400, since no `data` is sent.
// - otherwise `application/json`: a well-formed request whose document fails is a 200 (the errors
//   are in the body); a request that is not well formed is a 400.
// - either way: a body or document over its limit 413, a body that is not JSON 415 by its type,
//   a mutation over GET 405 with `Allow: POST`.
import type { ErrorCode } from '../../lib/errors.js'
import type { Refusal, RefusalCode } from './graphql-document.js'

export const GRAPHQL_RESPONSE_TYPE = 'application/graphql-response+json'
const JSON_MEDIA = 'application/json'

interface RefusalRule {
  /** Status when the answer is `application/graphql-response+json`. */
  status: number
  /** Status when the answer is `application/json`. */
  legacyStatus: number
  /** The catalog code the gateway's metrics and logs count it under. */
  errorCode: ErrorCode
}

export const REFUSALS: Readonly<Record<RefusalCode, RefusalRule>> = {
  BAD_REQUEST: { status: 400, legacyStatus: 400, errorCode: 'VALIDATION_ERROR' },
  PAYLOAD_TOO_LARGE: { status: 413, legacyStatus: 413, errorCode: 'PAYLOAD_TOO_LARGE' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, legacyStatus: 415, errorCode: 'UNSUPPORTED_MEDIA_TYPE' },
  METHOD_NOT_ALLOWED: { status: 405, legacyStatus: 405, errorCode: 'METHOD_NOT_ALLOWED' },
  GRAPHQL_PARSE_FAILED: { status: 400, legacyStatus: 200, errorCode: 'VALIDATION_ERROR' },
  GRAPHQL_VALIDATION_FAILED: { status: 400, legacyStatus: 200, errorCode: 'VALIDATION_ERROR' },
  OPERATION_RESOLUTION_FAILURE: { status: 400, legacyStatus: 200, errorCode: 'VALIDATION_ERROR' },
}

/** Whether the client accepts `application/graphql-response+json` (with a q above 0). */
export function wantsGraphqlResponse(accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes(GRAPHQL_RESPONSE_TYPE)) return false
  for (const range of accept.split(',')) {
    const [type, ...params] = range.split(';')
    if (type!.trim().toLowerCase() !== GRAPHQL_RESPONSE_TYPE) continue
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0
  }
  return false
}

export interface RefusalAnswer {
  status: number
  contentType: string
  body: string
  errorCode: ErrorCode
}

/** The answer to a refused request. */
export function refusalAnswer(r: Refusal, graphqlResponse: boolean): RefusalAnswer {
  const rule = REFUSALS[r.refused]
  const error = { message: r.message, ...(r.locations ? { locations: r.locations } : {}), extensions: { code: r.refused } }
  return {
    status: graphqlResponse ? rule.status : rule.legacyStatus,
    contentType: `${graphqlResponse ? GRAPHQL_RESPONSE_TYPE : JSON_MEDIA}; charset=utf-8`,
    body: JSON.stringify({ errors: [error] }),
    errorCode: rule.errorCode,
  }
}
