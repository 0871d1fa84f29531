// How a client's connection state maps onto upstream connections: what AUTH, HELLO and SELECT
// change (the client's identity, hence its pool), which keys a write touches, and the cache scope
// of an identity. Pure functions of a parsed command.
import { keyIndexes, type CommandSpec } from './commands.js'
import type { Policy } from './policy.js'
import type { RequestParser } from './request.js'
import { reply } from './resp.js'
import type { Identity } from './upstream.js'

/** What the proxy does with an AUTH, HELLO or SELECT. */
export type IdentityStep =
  /** Redis answers it as it is, and it changes nothing (a wrong arity, a version Redis refuses...). */
  | { kind: 'forward' }
  /** It sets something only a connection of the client's own can hold (a name). */
  | { kind: 'pin' }
  /**
   * The client moves to the pool of `next`. With `confirm`, the client's own command runs on a
   * connection of that pool and Redis's reply decides (AUTH means exactly what it means to
   * Redis); otherwise the pool's setup decides and `ok` is the answer.
   */
  | { kind: 'switch'; next: Identity; confirm: boolean; ok: Buffer | null }

const FORWARD: IdentityStep = { kind: 'forward' }

/** The integer forms Redis's string2ll accepts, no more: a SELECT the proxy takes for invalid must be invalid to Redis too. */
const REDIS_INT = /^(0|-?[1-9]\d{0,17})$/

export function authStep(p: RequestParser, id: Identity): IdentityStep {
  // Other arities get Redis's own error; a failed AUTH changes nothing on a connection.
  if (p.argc !== 2 && p.argc !== 3) return FORWARD
  const auth = p.argc === 3 ? [p.arg(1), p.arg(2)] : [p.arg(1)]
  return { kind: 'switch', next: { ...id, auth }, confirm: true, ok: null }
}

export function helloStep(p: RequestParser, id: Identity): IdentityStep {
  const proto = p.argc > 1 ? p.argInt(1) : NaN
  // Without a version, or with one Redis refuses, HELLO changes nothing: Redis answers it as it is.
  if (p.argc === 1 || (proto !== 2 && proto !== 3)) return FORWARD
  let auth = id.auth
  for (let i = 2; i < p.argc; i++) {
    if (p.argIs(i, 'AUTH') && i + 2 < p.argc) {
      auth = [p.arg(i + 1), p.arg(i + 2)]
      i += 2
    } else if (p.argIs(i, 'SETNAME') && i + 1 < p.argc) {
      return { kind: 'pin' }
    } else return FORWARD
  }
  return { kind: 'switch', next: { ...id, proto: proto as 2 | 3, auth }, confirm: true, ok: null }
}

export function selectStep(p: RequestParser, id: Identity): IdentityStep {
  // A SELECT Redis would refuse is sent as it is, for Redis's own error; it changes nothing.
  if (p.argc !== 2 || !REDIS_INT.test(p.arg(1))) return FORWARD
  const db = Number(p.arg(1))
  if (db < 0 || db > 0x7fffffff) return FORWARD
  return { kind: 'switch', next: { ...id, db }, confirm: false, ok: reply.ok }
}

/** The part of a cache key that keeps apart what different dbs, protocols and users read. */
export function scopeOf(id: Identity): string {
  const user = id.auth === undefined ? '' : id.auth.length === 2 ? id.auth[0] : 'default'
  return `${id.db}|${id.proto}|${user}|`
}

export function hasArg(p: RequestParser, word: string): boolean {
  for (let i = 1; i < p.argc; i++) if (p.argIs(i, word)) return true
  return false
}

/** The keys a write touches: one key as a string (the common case, no array), several as an array. */
export function writtenKeys(p: RequestParser, spec: CommandSpec): string | string[] | undefined {
  if (spec.first === 1 && spec.last === 1 && spec.numkeysAt === 0) return p.argc > 1 ? p.arg(1) : undefined
  const idx = keyIndexes(spec, p.argc, (i) => p.argInt(i))
  return idx.length > 0 ? idx.map((i) => p.arg(i)) : undefined
}

/** The policy's refusal of a command, as the reply to give, or undefined when it may run. */
export function refusalOf(policy: Policy, p: RequestParser, spec: CommandSpec): Buffer | undefined {
  if (!policy.mayRefuse.has(spec.name)) return undefined
  const sub = spec.container && p.argc > 1 ? p.argUpper(1) : undefined
  const why = policy.refusal(spec.name, sub)
  if (why === undefined) return undefined
  const name = sub === undefined ? spec.name : `${spec.name} ${sub}`
  return why === 'admin'
    ? reply.error(`ERR administrative command '${name}' is refused by the cache proxy policy (allowAdmin is off)`)
    : reply.error(`ERR command '${name}' is refused by the cache proxy policy`)
}
