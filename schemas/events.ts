// Gateway events on JetStream (`gateway.>`), blocklist entries (KV) and alerts (`alerts.>`).
// Every payload carries `v`: a consumer refuses a version it does not know instead of guessing.
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

export const EVENT_VERSION = 1

/** Every gateway event kind, once: its subject is `gateway.<kind>` (lib/subjects.ts). */
export const EVENT_KINDS = ['request.completed', 'rate_limit.hit', 'circuit.opened', 'circuit.closed', 'ip.blocked'] as const
export type EventKind = (typeof EVENT_KINDS)[number]

const Id = Type.String({ minLength: 1, maxLength: 128 })
const EpochMs = Type.Integer({ minimum: 0, description: 'epoch milliseconds' })
const Address = Type.String({ minLength: 1, maxLength: 64, description: 'client address (IPv6 as its /64)' })

const base = {
  v: Type.Literal(EVENT_VERSION),
  /** Unique per event; also its Nats-Msg-Id, so a repeated publish is stored once. */
  id: Id,
  ts: EpochMs,
  /** The gateway instance that emitted it. */
  source: Type.String({ minLength: 1, maxLength: 128 }),
}

const request = {
  requestId: Type.String({ maxLength: 128 }),
  traceId: Type.String({ maxLength: 32 }),
  method: Type.String({ maxLength: 16 }),
  /** Route template, never the raw URL. */
  route: Type.String({ maxLength: 512 }),
  /** The rate-limit key: the address, or `sub:<subject>` for an authenticated caller. */
  clientKey: Type.String({ maxLength: 200 }),
  address: Address,
}

export const RequestCompleted = Type.Object({
  ...base,
  kind: Type.Literal('request.completed'),
  ...request,
  status: Type.Integer({ minimum: 100, maximum: 599 }),
  latencyMs: Type.Number({ minimum: 0 }),
  startedAt: EpochMs,
  /** A GraphQL route's operation (optional: absent for other requests, and from gateways that predate it). */
  operationType: Type.Optional(Type.Union([Type.Literal('query'), Type.Literal('mutation'), Type.Literal('subscription')])),
  /** Absent for an anonymous operation. */
  operationName: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[_A-Za-z][_0-9A-Za-z]*$' })),
})
export type RequestCompleted = Static<typeof RequestCompleted>

export const RateLimitHit = Type.Object({
  ...base,
  kind: Type.Literal('rate_limit.hit'),
  ...request,
  capacity: Type.Number({ minimum: 0 }),
  refillPerSec: Type.Number({ minimum: 0 }),
})
export type RateLimitHit = Static<typeof RateLimitHit>

export const CircuitOpened = Type.Object({
  ...base,
  kind: Type.Literal('circuit.opened'),
  upstream: Type.String({ minLength: 1, maxLength: 256 }),
  reason: Type.Optional(Type.String({ maxLength: 512 })),
})
export type CircuitOpened = Static<typeof CircuitOpened>

export const CircuitClosed = Type.Object({
  ...base,
  kind: Type.Literal('circuit.closed'),
  upstream: Type.String({ minLength: 1, maxLength: 256 }),
})
export type CircuitClosed = Static<typeof CircuitClosed>

export const IpBlocked = Type.Object({
  ...base,
  kind: Type.Literal('ip.blocked'),
  address: Address,
  reason: Type.String({ maxLength: 512 }),
  expiresAt: EpochMs,
})
export type IpBlocked = Static<typeof IpBlocked>

export const GatewayEvent = Type.Union([RequestCompleted, RateLimitHit, CircuitOpened, CircuitClosed, IpBlocked])
export type GatewayEvent = Static<typeof GatewayEvent>
// The list above and the schemas' literals must name the same kinds, both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const kindsMatch: Same<EventKind, GatewayEvent['kind']> = true
void kindsMatch
const GatewayEventCheck = TypeCompiler.Compile(GatewayEvent)

/** A blocklist entry (KV value). The bucket's max_age bounds it; `expiresAt` is the block's own end. */
export const BlockEntry = Type.Object({
  v: Type.Literal(EVENT_VERSION),
  address: Address,
  reason: Type.String({ maxLength: 512 }),
  blockedAt: EpochMs,
  expiresAt: EpochMs,
})
export type BlockEntry = Static<typeof BlockEntry>
const BlockEntryCheck = TypeCompiler.Compile(BlockEntry)

/** An alert on `alerts.<kind>`. */
export const Alert = Type.Object({
  v: Type.Literal(EVENT_VERSION),
  kind: Type.Union([Type.Literal('circuit_opened'), Type.Literal('latency_spike'), Type.Literal('ip_blocked')]),
  /** The event that raised it (alerts are idempotent per cause). */
  cause: Id,
  ts: EpochMs,
  message: Type.String({ maxLength: 1024 }),
  details: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()])),
})
export type Alert = Static<typeof Alert>

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string }

const decoder = new TextDecoder()

function decode<T>(data: Uint8Array, check: { Check(v: unknown): v is T; Errors(v: unknown): Iterable<{ path: string; message: string }> }): Decoded<T> {
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(data))
  } catch {
    return { ok: false, reason: 'malformed JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' }
  const v = (value as { v?: unknown }).v
  if (v !== EVENT_VERSION) return { ok: false, reason: `unknown version ${JSON.stringify(v)}` }
  if (check.Check(value)) return { ok: true, value }
  const first = [...check.Errors(value)][0]
  return { ok: false, reason: first ? `invalid at ${first.path || '/'}: ${first.message}` : 'invalid' }
}

/** A gateway event from its bytes, or why it is not one. */
export const decodeEvent = (data: Uint8Array): Decoded<GatewayEvent> => decode(data, GatewayEventCheck)
export const decodeBlockEntry = (data: Uint8Array): Decoded<BlockEntry> => decode(data, BlockEntryCheck)
