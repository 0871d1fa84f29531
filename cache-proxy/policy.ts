// The cache policy: a YAML file checked once against a schema, then compiled so that a request
// pays a Map lookup and a prefix test, not a parse. A bad edit of the file is reported and the
// last good policy stays in force.
import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parse as parseYaml } from 'yaml'
import type { Logger } from '../lib/logger.js'
import { ADMIN_COMMANDS, isCacheableCommand } from './commands.js'

const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z][A-Za-z0-9._|-]*$' })
const Pattern = Type.String({ minLength: 1, maxLength: 1024 })

export const PolicySchema = Type.Object(
  {
    version: Type.Literal(1),
    defaultTtlSec: Type.Number({ exclusiveMinimum: 0, maximum: 86400, default: 30 }),
    /** Hard TTL: no entry, hot or not, lives longer than this in the local cache. */
    maxTtlSec: Type.Number({ exclusiveMinimum: 0, maximum: 86400, default: 300 }),
    maxEntryBytes: Type.Integer({ minimum: 1, maximum: 512 * 1024 * 1024, default: 1024 * 1024 }),
    rules: Type.Array(
      Type.Object(
        {
          commands: Type.Array(Name, { minItems: 1 }),
          keys: Type.Array(Pattern, { minItems: 1, default: ['*'] }),
          ttlSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 86400 })),
          cache: Type.Boolean({ default: true }),
        },
        { additionalProperties: false },
      ),
      { default: [] },
    ),
    tags: Type.Object(
      {
        prefix: Type.String({ minLength: 1, maxLength: 256, default: 'flowgate:tag:' }),
        rules: Type.Array(
          Type.Object({ keys: Pattern, tags: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { minItems: 1 }) }, { additionalProperties: false }),
          { default: [] },
        ),
        batchSize: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Commands answered with an error, never forwarded: `NAME` or `NAME|SUBCOMMAND` (Redis ACL notation). */
    refuse: Type.Array(Name, { default: [] }),
    /**
     * Administrative commands (Redis's @admin category and FLUSHALL) reach Redis only when this is
     * true: a shared proxy must not let one client reconfigure, stop or replicate the server.
     */
    allowAdmin: Type.Boolean({ default: false }),
    /** Administrative commands let through although allowAdmin is false (e.g. `CONFIG|GET`). */
    allow: Type.Array(Name, { default: [] }),
    stateful: Type.Union([Type.Literal('pin'), Type.Literal('refuse')], { default: 'pin' }),
    singleflight: Type.Object({ waitTimeoutMs: Type.Integer({ minimum: 1, maximum: 600000, default: 5000 }) }, { additionalProperties: false, default: {} }),
    hotKeys: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        sampleRate: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.05 }),
        capacity: Type.Integer({ minimum: 1, maximum: 100000, default: 256 }),
        minScore: Type.Number({ minimum: 0, default: 20 }),
        halfLifeSec: Type.Number({ exclusiveMinimum: 0, maximum: 86400, default: 10 }),
        ttlMultiplier: Type.Number({ minimum: 1, maximum: 100, default: 4 }),
        refreshAheadRatio: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.8 }),
      },
      { additionalProperties: false, default: {} },
    ),
    limits: Type.Object(
      {
        maxClientOutputBytes: Type.Integer({ minimum: 1024, default: 64 * 1024 * 1024 }),
        maxBulkBytes: Type.Integer({ minimum: 1, maximum: 512 * 1024 * 1024, default: 512 * 1024 * 1024 }),
        // Request bytes buffered for one client, and for all clients together: the proxy shares
        // its process with the gateway, so it holds far less than Redis's 1 GB per client.
        maxRequestBytes: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024, default: 64 * 1024 * 1024 }),
        maxTotalRequestBytes: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024 * 1024, default: 256 * 1024 * 1024 }),
        maxPendingCommands: Type.Integer({ minimum: 1, maximum: 1000000, default: 10000 }),
        maxPinnedClients: Type.Integer({ minimum: 0, maximum: 100000, default: 1024 }),
        maxClients: Type.Integer({ minimum: 1, maximum: 1000000, default: 10000 }),
        maxUpstreamIdentities: Type.Integer({ minimum: 1, maximum: 1024, default: 64 }),
      },
      { additionalProperties: false, default: {} },
    ),
    upstream: Type.Object(
      {
        connections: Type.Integer({ minimum: 1, maximum: 64, default: 2 }),
        // A shared connection whose oldest command has waited stallMs with no reply gets no new
        // clients (a slow script or a paused write holds only the clients already behind it);
        // when every connection is stalled the pool opens another, up to maxConnections.
        maxConnections: Type.Integer({ minimum: 1, maximum: 256, default: 16 }),
        stallMs: Type.Integer({ minimum: 1, maximum: 600000, default: 50 }),
        // Connections kept open and ready for clients that need a dedicated one, so that a
        // blocking command or MULTI reaches Redis at once instead of after a connect.
        spareConnections: Type.Integer({ minimum: 0, maximum: 64, default: 2 }),
        connectTimeoutMs: Type.Integer({ minimum: 10, maximum: 60000, default: 2000 }),
        // Redis is taken for hung, and the shared connections are dropped (their commands fail),
        // only when commands wait this long and a PING on a connection of its own gets no answer
        // either: a slow answer is not a dead server.
        replyTimeoutMs: Type.Integer({ minimum: 100, maximum: 600000, default: 10000 }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
)
export type PolicySource = Static<typeof PolicySchema>

/** The built-in policy: common deterministic reads of every key, 30 s. */
export const DEFAULT_POLICY_YAML = `version: 1
rules:
  - commands: [GET, MGET, HGET, HMGET, HGETALL, LRANGE, SMEMBERS, ZRANGE, ZSCORE, EXISTS, STRLEN]
    keys: ['*']
`

export class PolicyError extends Error {
  readonly problems: readonly string[]
  constructor(problems: string[]) {
    super(`Invalid cache policy:\n  - ${problems.join('\n  - ')}`)
    this.name = 'PolicyError'
    this.problems = problems
  }
}

/** A key matcher compiled from a Redis-style glob (`*`, `?`, `[abc]`, `\x`). */
export type KeyMatcher = (key: string) => boolean

export function compileGlob(glob: string): KeyMatcher {
  if (glob === '*') return () => true
  const star = glob.indexOf('*')
  if (!/[?[\\]/.test(glob) && (star === -1 || star === glob.length - 1) && glob.indexOf('*') === glob.lastIndexOf('*')) {
    if (star === -1) return (k) => k === glob
    const prefix = glob.slice(0, -1)
    return (k) => k.startsWith(prefix)
  }
  let re = '^'
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*') re += '[\\s\\S]*'
    else if (c === '?') re += '[\\s\\S]'
    else if (c === '\\' && i + 1 < glob.length) re += escapeRe(glob[++i]!)
    else if (c === '[') {
      const close = glob.indexOf(']', i + 1)
      if (close === -1) throw new Error(`unclosed [ in pattern "${glob}"`)
      let body = glob.slice(i + 1, close)
      const neg = body.startsWith('^')
      if (neg) body = body.slice(1)
      re += `[${neg ? '^' : ''}${body.replace(/[\]\\]/g, '\\$&')}]`
      i = close
    } else re += escapeRe(c)
  }
  const rx = new RegExp(re + '$')
  return (k) => rx.test(k)
}
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

export interface CompiledRule {
  readonly match: KeyMatcher
  readonly ttlMs: number
  readonly cache: boolean
}

export interface Policy {
  readonly source: PolicySource
  /** Upper-case command → rules in file order; the first whose pattern matches the key wins. */
  readonly rules: ReadonlyMap<string, readonly CompiledRule[]>
  /** Names (without subcommand) that `refusal` may refuse: every other command skips the check. */
  readonly mayRefuse: ReadonlySet<string>
  /** Why a command (`NAME`, and `NAME|SUB` for commands with subcommands) is refused, or undefined. */
  refusal(name: string, sub: string | undefined): 'policy' | 'admin' | undefined
  readonly tagRules: ReadonlyArray<{ match: KeyMatcher; tags: readonly string[] }>
  readonly maxTtlMs: number
}

/** Parses, validates and compiles a policy; throws PolicyError listing every problem. */
export function compilePolicy(text: string, origin = 'policy'): Policy {
  let raw: unknown
  try {
    raw = parseYaml(text)
  } catch (err) {
    throw new PolicyError([`${origin}: not valid YAML: ${(err as Error).message.split('\n')[0]}`])
  }
  const value = Value.Default(PolicySchema, structuredClone(raw ?? {}))
  const problems = [...Value.Errors(PolicySchema, value)].map((e) => `${e.path || '/'}: ${e.message}`)
  if (problems.length > 0) throw new PolicyError([...new Set(problems)])
  const src = value as PolicySource
  const rules = new Map<string, CompiledRule[]>()
  src.rules.forEach((rule, i) => {
    const ttlSec = rule.ttlSec ?? src.defaultTtlSec
    if (ttlSec > src.maxTtlSec) problems.push(`/rules/${i}/ttlSec: ${ttlSec} is above maxTtlSec ${src.maxTtlSec}`)
    for (const cmd of rule.commands) {
      if (!isCacheableCommand(cmd)) problems.push(`/rules/${i}/commands: ${cmd} is not a deterministic read the proxy can cache`)
      for (const [j, pattern] of rule.keys.entries()) {
        let match: KeyMatcher
        try {
          match = compileGlob(pattern)
        } catch (err) {
          problems.push(`/rules/${i}/keys/${j}: ${(err as Error).message}`)
          continue
        }
        const list = rules.get(cmd.toUpperCase()) ?? []
        list.push({ match, ttlMs: ttlSec * 1000, cache: rule.cache })
        rules.set(cmd.toUpperCase(), list)
      }
    }
  })
  const tagRules = src.tags.rules.map((r, i) => {
    try {
      return { match: compileGlob(r.keys), tags: r.tags }
    } catch (err) {
      problems.push(`/tags/rules/${i}/keys: ${(err as Error).message}`)
      return { match: () => false, tags: r.tags }
    }
  })
  if (problems.length > 0) throw new PolicyError(problems)
  const refused = new Set(src.refuse.map((c) => c.toUpperCase()))
  const allowed = new Set(src.allow.map((c) => c.toUpperCase()))
  const isAdmin = (name: string, full: string | undefined) => ADMIN_COMMANDS.has(name) || (full !== undefined && ADMIN_COMMANDS.has(full))
  const refusal = (name: string, sub: string | undefined): 'policy' | 'admin' | undefined => {
    const full = sub === undefined ? undefined : `${name}|${sub}`
    if (refused.has(name) || (full !== undefined && refused.has(full))) return 'policy'
    if (src.allowAdmin || !isAdmin(name, full)) return undefined
    return allowed.has(name) || (full !== undefined && allowed.has(full)) ? undefined : 'admin'
  }
  const mayRefuse = new Set([...refused, ...(src.allowAdmin ? [] : ADMIN_COMMANDS)].map((c) => c.split('|')[0]!))
  return Object.freeze({ source: src, rules, mayRefuse, refusal, tagRules, maxTtlMs: src.maxTtlSec * 1000 })
}

/** The first rule for a command and key, or undefined when the reply is not cached. */
export function ruleFor(policy: Policy, command: string, key: string): CompiledRule | undefined {
  const list = policy.rules.get(command)
  if (list === undefined) return undefined
  for (let i = 0; i < list.length; i++) if (list[i]!.match(key)) return list[i]!.cache ? list[i] : undefined
  return undefined
}

export interface PolicySourceHandle {
  current(): Policy
  close(): void
}

/**
 * Loads the policy file (or the built-in default) and watches it. A change that fails validation
 * is logged and ignored; `onChange` sees only good policies.
 */
export function loadPolicy(file: string | undefined, log: Logger, opts: { intervalMs?: number; onChange?: (p: Policy) => void } = {}): PolicySourceHandle {
  const read = () => compilePolicy(readFileSync(file!, 'utf8'), file)
  let policy = file ? read() : compilePolicy(DEFAULT_POLICY_YAML, 'built-in policy')
  if (!file) return { current: () => policy, close() {} }
  const onFile = () => {
    try {
      policy = read()
      log.info({ file }, 'cache policy reloaded')
      opts.onChange?.(policy)
    } catch (err) {
      log.error({ file, err: (err as Error).message }, 'cache policy change rejected; keeping the last good policy')
    }
  }
  watchFile(file, { interval: opts.intervalMs ?? 1000, persistent: false }, onFile)
  return { current: () => policy, close: () => unwatchFile(file, onFile) }
}
