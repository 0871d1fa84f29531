// Building and reading the envelope. Flows and the gateway both use these, so a reply built by a
// worker and an error built by the gateway are byte-for-byte the same shape.
import { EnvelopeCheck, type Envelope, type ErrorEnvelope } from '../schemas/envelope.js'
import { codeForStatus, FlowgateError, isErrorCode, type ErrorCode } from './errors.js'

/** The content type of every envelope the gateway sends. */
export const JSON_TYPE = 'application/json; charset=utf-8'

export function successEnvelope(data: unknown, status: number, traceId: string): string {
  // Hand-assembled: one JSON.stringify of the payload instead of one of a wrapper object.
  return `{"success":true,"status":${status},"data":${data === undefined ? 'null' : JSON.stringify(data)},"traceId":"${traceId}"}`
}

/** The failure envelope. Unexpected errors (5xx that were not thrown deliberately) are masked by the caller. */
export function errorEnvelope(err: FlowgateError, traceId: string): ErrorEnvelope {
  const body: ErrorEnvelope = {
    success: false,
    status: err.status,
    errorCode: err.code,
    message: err.message,
    traceId,
  }
  if (err.detailed) body.detailed = err.detailed
  return body
}

/** A reply from the bus (its text): checked against the envelope schema; anything else is a BAD_GATEWAY. */
export function parseEnvelope(text: string): Envelope {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new FlowgateError('BAD_GATEWAY', 'Flow replied with invalid JSON', { stack: false })
  }
  if (!EnvelopeCheck.Check(value)) {
    throw new FlowgateError('BAD_GATEWAY', 'Flow replied with an invalid envelope', { stack: false })
  }
  return value
}

/** A failure envelope from a flow, revived into the typed error (unknown codes keep their status). */
export function reviveError(env: ErrorEnvelope): FlowgateError {
  const code: ErrorCode = isErrorCode(env.errorCode) ? env.errorCode : codeForStatus(env.status)
  return new FlowgateError(code, env.message, { detailed: env.detailed, stack: false })
}
