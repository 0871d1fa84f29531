// W3C trace context and request ids. Incoming values are accepted only in their exact format and
// bounded length; anything else is replaced, never echoed.
import { randomFillSync } from 'node:crypto'

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/
const TRACESTATE_MAX = 512

export interface TraceContext {
  traceId: string
  /** The parent span id (the caller's), or undefined at a root. */
  parentSpanId: string | undefined
  flags: string
  tracestate: string | undefined
}

// Ids are cut from one random pool refilled 4 KiB at a time: a crypto call per id costs more than the id.
const pool = Buffer.alloc(4096)
let offset = pool.length

function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const hex = pool.toString('hex', offset, offset + bytes)
  offset += bytes
  return hex
}

export const newTraceId = (): string => randomHex(16)
export const newSpanId = (): string => randomHex(8)
export const newRequestId = (): string => randomHex(12)
/** A call's id on the bus: 128 random bits, so nobody can guess another call's. */
export const newCallId = (): string => randomHex(16)

/** Continues a valid incoming `traceparent`, or starts a new trace. */
export function parseTraceparent(value: unknown, tracestate?: unknown): TraceContext {
  if (typeof value === 'string' && value.length === 55) {
    const m = TRACEPARENT.exec(value)
    if (m && m[1] !== ZERO_TRACE && m[2] !== ZERO_SPAN) {
      const state = typeof tracestate === 'string' && tracestate.length <= TRACESTATE_MAX ? tracestate : undefined
      return { traceId: m[1]!, parentSpanId: m[2]!, flags: m[3]!, tracestate: state }
    }
  }
  return { traceId: newTraceId(), parentSpanId: undefined, flags: '01', tracestate: undefined }
}

/** Whether traceparent flags say the caller recorded (sampled) its span. */
export function isSampled(flags: string): boolean {
  return (parseInt(flags, 16) & 1) === 1
}

export function formatTraceparent(traceId: string, spanId: string, flags = '01'): string {
  return `00-${traceId}-${spanId}-${flags}`
}

/** An incoming request id if it is short and plain, else a new one. */
export function acceptRequestId(value: unknown): string {
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : newRequestId()
}
