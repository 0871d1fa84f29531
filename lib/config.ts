// The one place that reads the environment. Every setting is declared once below with the
// environment variable it comes from, its default and its bounds; loadConfig() converts, checks
// and freezes, and reports every invalid variable at once instead of stopping at the first.
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseCidr } from './address.js'
import { devSecretPath, ensureDevSecret, readDevSecret } from './dev-secret.js'

const env = (name: string, description: string) => ({ env: name, description })
const Str = (name: string, description: string, def: string, opts: { minLength?: number; pattern?: string } = {}) =>
  Type.String({ ...env(name, description), default: def, ...opts })
const Int = (name: string, description: string, def: number, minimum: number, maximum: number) =>
  Type.Integer({ ...env(name, description), default: def, minimum, maximum })
const Num = (name: string, description: string, def: number, minimum: number, maximum: number) =>
  Type.Number({ ...env(name, description), default: def, minimum, maximum })
const Bool = (name: string, description: string, def: boolean) => Type.Boolean({ ...env(name, description), default: def })
const Opt = (name: string, description: string) => Type.Optional(Type.String({ ...env(name, description), minLength: 1 }))
/** A comma-separated list in the environment; an array here. */
const List = (name: string, description: string) =>
  Type.Array(Type.String({ minLength: 1 }), { ...env(name, description), default: [], list: true })

export const ConfigSchema = Type.Object({
  nodeEnv: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    ...env('NODE_ENV', 'development, production or test; production refuses default secrets'),
    default: 'development',
  }),
  host: Str('HOST', 'address the gateway listens on; unset in production = 0.0.0.0', '127.0.0.1'),
  port: Int('PORT', 'gateway HTTP port', 3000, 0, 65535),
  natsUrl: Opt('NATS_URL', 'NATS server(s), comma-separated (nats:// or tls://); unset: `flowgate start` runs its own locked-down nats-server, which the other commands then use (else nats://127.0.0.1:4222)'),
  natsConnectTimeoutMs: Int('NATS_CONNECT_TIMEOUT_MS', 'how long to wait for NATS at start', 2000, 100, 60000),
  dataDir: Str('DATA_DIR', 'project-local data (embedded PostgreSQL, a NATS started by `flowgate start`)', '.flowgate'),
  logLevel: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { ...env('LOG_LEVEL', 'pino level'), default: 'info' },
  ),
  requestTimeoutMs: Int('REQUEST_TIMEOUT_MS', 'default deadline of a flow call; a flow may declare its own', 5000, 50, 300000),
  bodyLimitBytes: Int('BODY_LIMIT_BYTES', 'largest accepted request body', 1048576, 1024, 67108864),
  maxPendingRequests: Int('MAX_PENDING_REQUESTS', 'flow calls in flight per gateway before 503', 10000, 1, 1000000),
  discoveryIntervalMs: Int('DISCOVERY_INTERVAL_MS', 'how often the gateway re-reads $SRV.INFO', 2000, 100, 600000),
  discoveryWaitMs: Int('DISCOVERY_WAIT_MS', 'how long one discovery round collects answers', 300, 20, 10000),
  flowConcurrency: Int('FLOW_CONCURRENCY', 'flow runs at once per worker process', 64, 1, 10000),
  flowQueueLimit: Int('FLOW_QUEUE_LIMIT', 'requests a busy worker holds before answering 503', 1000, 0, 1000000),
  shutdownTimeoutMs: Int('SHUTDOWN_TIMEOUT_MS', 'deadline for a graceful stop', 10000, 100, 600000),
  trustProxy: List('TRUST_PROXY', 'trusted proxy addresses/CIDRs; X-Forwarded-For is ignored unless the peer is one'),
  corsOrigins: List('CORS_ORIGINS', 'allowed CORS origins; CORS is off when empty'),
  databaseUrl: Opt('DATABASE_URL', 'PostgreSQL URL; unset = embedded PGlite under DATA_DIR'),
  dbPoolMax: Int('DB_POOL_MAX', 'PostgreSQL pool size per process', 10, 1, 1000),
  dbStatementTimeoutMs: Int('DB_STATEMENT_TIMEOUT_MS', 'per-statement timeout', 5000, 100, 600000),
  dbConnectTimeoutMs: Int('DB_CONNECT_TIMEOUT_MS', 'how long a query waits for a PostgreSQL connection before 503', 2000, 100, 60000),
  redisUrl: Str('REDIS_URL', 'Redis behind the cache proxy', 'redis://127.0.0.1:6379'),
  cacheUrl: Opt('CACHE_URL', 'where flows reach Redis; default: the cache proxy'),
  cacheProxyHost: Str('CACHE_PROXY_HOST', 'address the cache proxy listens on', '127.0.0.1'),
  cacheProxyPort: Int('CACHE_PROXY_PORT', 'cache proxy RESP port', 6380, 0, 65535),
  cachePolicyFile: Opt('CACHE_POLICY_FILE', 'YAML cache policy; unset = the built-in default'),
  cacheCommandTimeoutMs: Int('CACHE_COMMAND_TIMEOUT_MS', 'a flow cache command slower than this is skipped (the flow reads the database)', 250, 10, 10000),
  cacheProxyMetricsPort: Int('CACHE_PROXY_METRICS_PORT', 'HTTP port of the cache proxy\'s /metrics; 0 = off', 0, 0, 65535),
  cacheMaxBytes: Int('CACHE_MAX_BYTES', 'local cache size bound', 67108864, 0, 17179869184),
  jwtSecret: Str('JWT_SECRET', 'HMAC secret for tokens (>= 32 chars in production); unset in development = generated once per DATA_DIR', 'flowgate-development-secret-do-not-use', {
    minLength: 1,
  }),
  jwtIssuer: Str('JWT_ISSUER', 'iss of issued tokens, checked on verify', 'flowgate'),
  jwtAudience: Str('JWT_AUDIENCE', 'aud of issued tokens, checked on verify', 'flowgate-api'),
  jwtTtlSec: Int('JWT_TTL_SEC', 'lifetime of issued tokens', 3600, 30, 604800),
  jwtClockSkewSec: Int('JWT_CLOCK_SKEW_SEC', 'tolerated clock skew on exp/nbf/iat', 30, 0, 300),
  adminEmail: Opt('ADMIN_EMAIL', 'root admin created by the seed'),
  adminPassword: Opt('ADMIN_PASSWORD', 'its password; unset in development = random, printed once'),
  seedClientId: Str('SEED_CLIENT_ID', 'API client created by the seed', 'flowgate-dev', { minLength: 3, pattern: '^[A-Za-z0-9._-]{3,64}$' }),
  seedClientSecret: Opt('SEED_CLIENT_SECRET', 'its secret; unset in development = random, printed once; unset in production = no client'),
  rateLimitCapacity: Int('RATE_LIMIT_CAPACITY', 'token bucket size', 10, 1, 1000000),
  rateLimitRefillPerSec: Num('RATE_LIMIT_REFILL_PER_SEC', 'tokens added per second', 2, 0.001, 1000000),
  rateLimitStore: Type.Union([Type.Literal('memory'), Type.Literal('redis')], {
    ...env('RATE_LIMIT_STORE', 'memory (per gateway) or redis (shared by gateways)'),
    default: 'memory',
  }),
  rateLimitMaxKeys: Int('RATE_LIMIT_MAX_KEYS', 'buckets kept in memory before the idlest are evicted', 100000, 100, 10000000),
  eventsEnabled: Bool('EVENTS_ENABLED', 'publish gateway events to JetStream', true),
  eventsBufferSize: Int('EVENTS_BUFFER_SIZE', 'events waiting to be published before new ones are dropped', 10000, 1, 1000000),
  autoBlockHits: Int('AUTOBLOCK_HITS', 'rate-limit hits that block an address', 5, 1, 100000),
  autoBlockWindowSec: Int('AUTOBLOCK_WINDOW_SEC', 'window in which the hits are counted', 60, 1, 86400),
  autoBlockTtlSec: Int('AUTOBLOCK_TTL_SEC', 'how long a block lasts', 900, 1, 2592000),
  latencySpikeFactor: Num('LATENCY_SPIKE_FACTOR', 'alert when a request is this many times the rolling mean', 3, 1, 1000),
  latencyWindow: Int('LATENCY_WINDOW', 'requests in the rolling mean per route', 50, 2, 10000),
  rateLimitEnabled: Bool('RATE_LIMIT_ENABLED', 'token-bucket rate limiting at the edge', true),
  rateLimitRoutes: List('RATE_LIMIT_ROUTES', 'per-route or per-flow limits: "METHOD /path=capacity:refillPerSec" (a route template) or "flow:<name>=capacity:refillPerSec"'),
  rateLimitRedisTimeoutMs: Int('RATE_LIMIT_REDIS_TIMEOUT_MS', 'a Redis limiter call slower than this lets the request through', 100, 5, 10000),
  blocklistEnabled: Bool('BLOCKLIST_ENABLED', 'refuse addresses on the KV blocklist', true),
  eventsMaxAgeSec: Int('EVENTS_MAX_AGE_SEC', 'how long the gateway event stream keeps events', 86400, 60, 31536000),
  eventsMaxBytes: Int('EVENTS_MAX_BYTES', 'size bound of the gateway event stream', 1073741824, 1048576, 1099511627776),
  eventsDuplicateWindowSec: Int('EVENTS_DUPLICATE_WINDOW_SEC', 'window in which a repeated Nats-Msg-Id is dropped (the server keeps every id this long)', 60, 1, 86400),
  subscriberAckWaitSec: Int('SUBSCRIBER_ACK_WAIT_SEC', 'an event the subscriber has not acked in this time is redelivered', 30, 1, 3600),
  subscriberMaxDeliver: Int('SUBSCRIBER_MAX_DELIVER', 'deliveries of one event before the subscriber gives up on it', 10, 1, 1000),
  otelEndpoint: Opt('OTEL_EXPORTER_OTLP_ENDPOINT', 'OTLP/HTTP endpoint; tracing export is off when unset'),
  otelServiceName: Opt('OTEL_SERVICE_NAME', 'service.name of exported spans; unset = flowgate-<process> (flowgate under `flowgate start`)'),
  // The bus: how each process authenticates to NATS (as the NATS CLI takes it), and who may publish routes.
  natsCreds: Opt('NATS_CREDS', 'a .creds file (user JWT and NKey seed) for decentralised NATS auth'),
  natsNkeySeed: Opt('NATS_NKEY_SEED', 'an NKey user seed, or a file holding one'),
  natsUser: Opt('NATS_USER', 'NATS user name (with NATS_PASSWORD)'),
  natsPassword: Opt('NATS_PASSWORD', 'NATS password'),
  natsToken: Opt('NATS_TOKEN', 'NATS authentication token'),
  natsTlsCa: Opt('NATS_TLS_CA', 'CA certificate file the NATS server\'s certificate must chain to (turns TLS on)'),
  natsTlsCert: Opt('NATS_TLS_CERT', 'client certificate file, for servers that verify clients'),
  natsTlsKey: Opt('NATS_TLS_KEY', 'its private key file'),
  localNatsPort: Int('LOCAL_NATS_PORT', 'port of the nats-server `flowgate start` runs when NATS_URL is unset (a free one when it is taken); 0 = any free port', 4222, 0, 65535),
  flowServices: List('FLOW_SERVICES', 'micro-service names allowed to publish routes; empty = any service'),
  // Proxy routes to HTTP upstreams
  servicesFile: Opt('SERVICES_FILE', 'YAML or JSON file of upstreams and proxy routes, re-read on change; unset = no proxy routes'),
  servicesPollMs: Int('SERVICES_POLL_MS', 'how often the services file is checked for changes besides the file watch', 500, 50, 60000),
  servicesKvEnabled: Bool('SERVICES_KV_ENABLED', 'watch the NATS KV bucket in which HTTP services register themselves', false),
  servicesKvTtlSec: Int('SERVICES_KV_TTL_SEC', 'how long a registration lasts without a heartbeat (`flowgate upstream register` renews it every third of that)', 15, 3, 300),
  consulUrl: Opt('CONSUL_URL', 'Consul agent HTTP address for upstreams discovered through Consul; off when unset'),
  consulToken: Opt('CONSUL_TOKEN', 'Consul ACL token'),
  // WebSocket proxying (routes with `websocket` in the services file)
  wsMaxSockets: Int('WS_MAX_SOCKETS', 'open proxied WebSockets (and handshakes under way) per gateway; past it an upgrade is refused with 503', 10000, 1, 1000000),
  wsMaxSocketsPerClient: Int('WS_MAX_SOCKETS_PER_CLIENT', 'open proxied WebSockets per client (token subject, else address); past it an upgrade is refused with 429', 100, 1, 1000000),
  wsIdleTimeoutMs: Int('WS_IDLE_TIMEOUT_MS', 'a proxied WebSocket with no frame either way for this long is closed (1001) on both sides; a route may set its own', 300000, 1000, 86400000),
  wsMaxMessageBytes: Int('WS_MAX_MESSAGE_BYTES', 'largest WebSocket message relayed, checked while it arrives (1009 to its sender, the other side closed too); a route may set its own', 1048576, 125, 268435456),
  wsAuthQueryParam: Str('WS_AUTH_QUERY_PARAM', 'query parameter an upgrade may carry its bearer token in (browsers cannot set Authorization); removed before routing, never forwarded or logged; empty = off', '', { pattern: '^[A-Za-z0-9_.-]{0,64}$' }),
  wsAuthSubprotocolPrefix: Str('WS_AUTH_SUBPROTOCOL_PREFIX', 'an offered Sec-WebSocket-Protocol starting with this carries the bearer token after it (e.g. `bearer.`); removed before forwarding; empty = off', '', { pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{0,64}$" }),
  demoUpstreams: Bool('DEMO_UPSTREAMS', 'in development, `flowgate start` without SERVICES_FILE runs two demo upstreams behind /api/products', true),
  // Observability: sampling, export bounds, per-process metrics ports
  otelTracesSampler: Type.Union(
    ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'].map((s) => Type.Literal(s)),
    { ...env('OTEL_TRACES_SAMPLER', 'which requests are traced; parentbased_* follow the caller\'s traceparent decision'), default: 'parentbased_always_on' },
  ),
  otelTracesSamplerArg: Num('OTEL_TRACES_SAMPLER_ARG', 'sampled fraction for the *traceidratio samplers', 1, 0, 1),
  otelResourceAttributes: Type.Array(Type.String({ pattern: '^[^=,]+=[^,]*$' }), {
    ...env('OTEL_RESOURCE_ATTRIBUTES', 'extra resource attributes of exported spans: key=value,key=value (values percent-encoded)'),
    default: [],
    list: true,
  }),
  otelBspMaxQueueSize: Int('OTEL_BSP_MAX_QUEUE_SIZE', 'finished spans waiting for export; past it spans are dropped and counted', 2048, 1, 1000000),
  otelBspScheduleDelayMs: Int('OTEL_BSP_SCHEDULE_DELAY', 'milliseconds between span exports', 1000, 10, 600000),
  otelExporterTimeoutMs: Int('OTEL_EXPORTER_OTLP_TIMEOUT', 'milliseconds one span export may take before it is given up (its spans counted as dropped)', 5000, 100, 600000),
  otelNodeDisabledInstrumentations: Type.Array(Type.Union([Type.Literal('pg'), Type.Literal('ioredis'), Type.Literal('undici')]), {
    ...env('OTEL_NODE_DISABLED_INSTRUMENTATIONS', 'library instrumentations not to load (pg, ioredis, undici); with all three off a worker runs no context manager, which is cheaper'),
    default: [],
    list: true,
  }),
  flowMetricsPort: Int('FLOW_METRICS_PORT', 'HTTP port of a flow worker\'s /metrics; 0 = off (`flowgate start` serves them on the gateway\'s /metrics)', 0, 0, 65535),
  subscriberMetricsPort: Int('SUBSCRIBER_METRICS_PORT', 'HTTP port of the subscriber\'s /metrics; 0 = off (`flowgate start` serves them on the gateway\'s /metrics)', 0, 0, 65535),
  metricsHost: Str('METRICS_HOST', 'address the worker\'s and subscriber\'s /metrics listen on', '127.0.0.1'),
  // Safe defaults: who is never auto-blocked, alert floors, how long a client may take to send a request
  autoBlockExempt: List('AUTOBLOCK_EXEMPT', 'addresses/CIDRs never auto-blocked; unset = loopback (127.0.0.0/8, ::1) in development, none otherwise; "none" = none'),
  latencySpikeMinMs: Num('LATENCY_SPIKE_MIN_MS', 'a request faster than this never raises a latency alert', 100, 0, 600000),
  httpRequestTimeoutMs: Int('HTTP_REQUEST_TIMEOUT_MS', 'time a client has to send a whole request, headers and body, before 408', 30000, 1000, 600000),
})

export type Config = Readonly<Static<typeof ConfigSchema>>

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor(problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

type Annotated = TSchema & { env: string; description: string; list?: boolean; default?: unknown }
const properties = ConfigSchema.properties as unknown as Record<string, Annotated>

/** Every setting with its variable, default and description (for the README table and `flowgate config`). */
export function describeConfig(): Array<{ env: string; default: string; description: string }> {
  return Object.values(properties).map((p) => ({
    env: p.env,
    default: p.default === undefined ? '' : Array.isArray(p.default) ? p.default.join(',') : String(p.default),
    description: p.description,
  }))
}

const DEFAULT_SECRET = (properties.jwtSecret as Annotated).default as string
const LOOPBACK = ['127.0.0.0/8', '::1'] as const

/**
 * Reads, converts and checks the environment once; the result is frozen. In development an unset
 * JWT_SECRET is the secret kept in DATA_DIR: made there when `keepSecret` (the commands that serve),
 * read when present otherwise (a command that signs nothing creates nothing).
 */
export function loadConfig(source: Record<string, string | undefined> = process.env, opts: { keepSecret?: boolean } = {}): Config {
  const raw: Record<string, unknown> = {}
  for (const [key, prop] of Object.entries(properties)) {
    const value = source[prop.env]
    if (value === undefined || value === '') continue
    raw[key] = prop.list ? value.split(',').map((s) => s.trim()).filter(Boolean) : value.trim()
  }
  const problems: string[] = []
  if (raw.jwtSecret === undefined && (raw.nodeEnv ?? 'development') === 'development') {
    const dataDir = String(raw.dataDir ?? (properties.dataDir as Annotated).default)
    try {
      raw.jwtSecret = opts.keepSecret ? ensureDevSecret(dataDir).secret : readDevSecret(dataDir)
    } catch (err) {
      problems.push(`JWT_SECRET: unset, and no secret can be kept in ${devSecretPath(dataDir)} (${err instanceof Error ? err.message : String(err)}); set JWT_SECRET or DATA_DIR`)
    }
  }
  let config: Config | undefined
  try {
    config = parseConfig(raw)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(...err.problems)
  }
  if (problems.length > 0 || config === undefined) throw new ConfigError(problems)
  return config
}

/** Checks a partial literal config (tests pass one) and fills defaults. */
export function parseConfig(partial: Record<string, unknown>): Config {
  const value = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, structuredClone(partial)))
  const problems = [...Value.Errors(ConfigSchema, value)].map((e) => {
    const key = e.path.split('/')[1] ?? ''
    const name = properties[key]?.env ?? key
    return `${name}: ${e.message} (got ${JSON.stringify(e.value)})`
  })
  const config = value as Static<typeof ConfigSchema>
  // A developer's gateway stays on the loopback interface; a production one listens on every interface
  // (a container's port). A developer's machine never locks itself out; production exempts nobody unless told.
  if (partial.host === undefined && config.nodeEnv === 'production') config.host = '0.0.0.0'
  if (partial.autoBlockExempt === undefined && config.nodeEnv === 'development') config.autoBlockExempt = [...LOOPBACK]
  if (config.autoBlockExempt.length === 1 && config.autoBlockExempt[0] === 'none') config.autoBlockExempt = []
  for (const cidr of config.autoBlockExempt) {
    if (parseCidr(cidr) === undefined) problems.push(`AUTOBLOCK_EXEMPT: "${cidr}" is not an address or CIDR (e.g. 10.0.0.0/8, ::1)`)
  }
  if (config.nodeEnv === 'production') {
    if (config.jwtSecret === DEFAULT_SECRET) problems.push('JWT_SECRET: must be set in production (the default is public)')
    else if (config.jwtSecret.length < 32) problems.push('JWT_SECRET: must be at least 32 characters in production')
  }
  if ((config.natsUser === undefined) !== (config.natsPassword === undefined)) problems.push('NATS_USER and NATS_PASSWORD: set both or neither')
  if ((config.natsTlsCert === undefined) !== (config.natsTlsKey === undefined)) problems.push('NATS_TLS_CERT and NATS_TLS_KEY: set both or neither')
  if (problems.length > 0) throw new ConfigError([...new Set(problems)])
  return Object.freeze(config)
}

export function isDefaultSecret(config: Config): boolean {
  return config.jwtSecret === DEFAULT_SECRET
}

// Settings whose values are never printed: by name, so a setting added later is masked too.
const SECRET_NAME = /SECRET|PASSWORD|TOKEN|CREDS|NKEY|_KEY$/

/** A value as `flowgate config` prints it: secrets as stars, credentials in a URL replaced. */
function shown(env: string, value: unknown): string {
  const text = Array.isArray(value) ? value.join(',') : value === undefined ? '' : String(value)
  if (text === '') return ''
  if (SECRET_NAME.test(env)) return '********'
  // user:password@ (or a token as the user) in any URL of a comma-separated list
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s,]+@/gi, '$1***@')
}

export interface Setting {
  env: string
  /** The value in effect, secrets masked. */
  value: string
  /** `environment`, `default`, or `generated` (the development secret kept in DATA_DIR). */
  origin: 'environment' | 'default' | 'generated'
  description: string
}

/** Every setting with the value in effect and where it came from (`flowgate config`). */
export function effectiveSettings(config: Config, source: Record<string, string | undefined> = process.env): Setting[] {
  return Object.entries(properties).map(([key, p]) => {
    const set = source[p.env] !== undefined && source[p.env] !== ''
    let value = shown(p.env, (config as Record<string, unknown>)[key])
    let origin: Setting['origin'] = set ? 'environment' : 'default'
    if (key === 'jwtSecret' && !set && config.nodeEnv === 'development') {
      origin = 'generated'
      value = isDefaultSecret(config) ? `(made at the first start, in ${devSecretPath(config.dataDir)})` : `******** (kept in ${devSecretPath(config.dataDir)})`
    }
    return { env: p.env, value, origin, description: p.description }
  })
}
