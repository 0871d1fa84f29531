// The services KV bucket, declared once for the gateway (watches it) and the CLI (registers an
// instance and renews it). One key per instance, `<service>.<instance id>`, one value each.
import { createHash } from 'node:crypto'
import type { KV, NatsConnection } from 'nats'
import { REGISTRATION_VERSION, ServiceInstanceCheck, type ServiceInstance } from '../schemas/services.js'
import { buckets } from './subjects.js'

/** The longest a registration may last without renewal; the bucket drops older values. */
export const MAX_REGISTRATION_TTL_SEC = 300
const KEY = /^([a-z][a-z0-9_-]{0,62})\.([A-Za-z0-9_-]{1,64})$/

/** Opens (creating when absent) the services bucket. */
export async function openServicesBucket(nc: NatsConnection): Promise<KV> {
  const js = nc.jetstream({ timeout: 2000 })
  return js.views.kv(buckets.services, { history: 1, ttl: MAX_REGISTRATION_TTL_SEC * 1000, max_bytes: 16 * 1024 * 1024 })
}

/** The key of an instance: its service, and a stable id from its URL unless one is given. */
export function instanceKey(service: string, url: string, id?: string): string {
  return `${service}.${id ?? createHash('sha256').update(url).digest('hex').slice(0, 16)}`
}

export function serviceOfKey(key: string): string | undefined {
  return KEY.exec(key)?.[1]
}

export type Read = { ok: true; value: ServiceInstance } | { ok: false; reason: string }

const decoder = new TextDecoder()

/** A stored value read back: well-formed, and naming the service of its key. */
export function readInstance(key: string, data: Uint8Array): Read {
  const service = serviceOfKey(key)
  if (service === undefined) return { ok: false, reason: 'malformed key' }
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(data))
  } catch {
    return { ok: false, reason: 'malformed JSON' }
  }
  if (!ServiceInstanceCheck.Check(value)) return { ok: false, reason: 'not a service instance' }
  if (value.service !== service) return { ok: false, reason: `value names another service (${value.service})` }
  return { ok: true, value }
}

/** Writes (or renews) one instance for `ttlSec`. */
export async function registerInstance(kv: KV, key: string, entry: Omit<ServiceInstance, 'v' | 'expiresAt' | 'registeredAt'>, ttlSec: number, nowMs = Date.now()): Promise<void> {
  const value: ServiceInstance = { v: REGISTRATION_VERSION, ...entry, registeredAt: nowMs, expiresAt: nowMs + Math.min(ttlSec, MAX_REGISTRATION_TTL_SEC) * 1000 }
  await kv.put(key, JSON.stringify(value))
}
