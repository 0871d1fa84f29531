// A registered HTTP service instance, as stored in the services KV bucket: written by the instance
// (or `flowgate upstream register` beside it), read by every gateway. The value carries its own
// expiry: nats-server 2.9 has no per-message TTL, so an instance that stops renewing is dropped by
// the gateways at `expiresAt` and by the bucket's max_age later.
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

export const REGISTRATION_VERSION = 1

export const ServiceInstance = Type.Object(
  {
    v: Type.Literal(REGISTRATION_VERSION),
    service: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,62}$' }),
    url: Type.String({ minLength: 8, maxLength: 2048, pattern: '^https?://' }),
    weight: Type.Integer({ minimum: 1, maximum: 1000 }),
    registeredAt: Type.Integer({ minimum: 0 }),
    expiresAt: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
)
export type ServiceInstance = Static<typeof ServiceInstance>
export const ServiceInstanceCheck = TypeCompiler.Compile(ServiceInstance)
