// The HTTP and NATS reply envelope (DESIGN.md, "HTTP envelope").
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

export const TraceId = Type.String({ pattern: '^[0-9a-f]{32}$', description: 'W3C trace id' })

export const FieldErrorSchema = Type.Object({
  field: Type.String(),
  message: Type.String(),
})

export const SuccessEnvelope = Type.Object({
  success: Type.Literal(true),
  status: Type.Integer({ minimum: 200, maximum: 299 }),
  data: Type.Unknown(),
  traceId: TraceId,
})
export type SuccessEnvelope = Static<typeof SuccessEnvelope>

export const ErrorEnvelope = Type.Object({
  success: Type.Literal(false),
  status: Type.Integer({ minimum: 400, maximum: 599 }),
  errorCode: Type.String({ pattern: '^[A-Z][A-Z0-9_]{1,63}$' }),
  message: Type.String({ maxLength: 1000 }),
  detailed: Type.Optional(Type.Array(FieldErrorSchema, { maxItems: 100 })),
  traceId: TraceId,
})
export type ErrorEnvelope = Static<typeof ErrorEnvelope>

export const Envelope = Type.Union([SuccessEnvelope, ErrorEnvelope])
export type Envelope = Static<typeof Envelope>

export const EnvelopeCheck = TypeCompiler.Compile(Envelope)
