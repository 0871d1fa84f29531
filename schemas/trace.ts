// One flow step as published on `traces.<traceId>` by the worker and read back by the gateway
// (`/traces/:traceId`) and the CLI; with `kind: 'run'`, the flow run itself (one per request, its
// steps under its spanId). Versioned like the gateway events.
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

const Hex = (length: number) => Type.String({ pattern: `^[0-9a-f]{${length}}$` })

export const StepEvent = Type.Object({
  v: Type.Literal(1),
  /** 'run' for the flow run's own event; absent for a step. */
  kind: Type.Optional(Type.Literal('run')),
  traceId: Hex(32),
  spanId: Hex(16),
  parentSpanId: Hex(16),
  requestId: Type.String({ maxLength: 128 }),
  flow: Type.String({ maxLength: 128 }),
  step: Type.String({ maxLength: 512 }),
  outcome: Type.Union([Type.Literal('ok'), Type.Literal('error')]),
  errorCode: Type.Optional(Type.String({ maxLength: 64 })),
  error: Type.Optional(Type.String({ maxLength: 1024 })),
  /** The NATS micro service instance id of the worker that ran the step. */
  worker: Type.Optional(Type.String({ maxLength: 128 })),
  startedAt: Type.Integer({ minimum: 0, description: 'epoch milliseconds' }),
  durationMs: Type.Number({ minimum: 0 }),
})
export type StepEvent = Static<typeof StepEvent>
export const StepEventCheck = TypeCompiler.Compile(StepEvent)
