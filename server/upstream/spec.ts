// What a services file may say, as TypeBox schemas, and the normalised form the gateway runs on.
// The schema catches shapes and typos (unknown keys are errors); services-file.ts adds the checks a
// schema cannot express (unknown upstream, duplicate target, a URL with credentials) and fills defaults.
import { Type, type Static } from '@sinclair/typebox'
import type { AuthPolicy } from '../../lib/auth.js'
import { GraphqlRouteFile, type GraphqlSettings } from './graphql-settings.js'

export const BALANCERS = ['round-robin', 'least-connections', 'weighted-round-robin', 'p2c-ewma'] as const
export type BalancerName = (typeof BALANCERS)[number]

/** Methods a proxy route may serve (TRACE and CONNECT are never forwarded). */
export const PROXY_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const
export type ProxyMethod = (typeof PROXY_METHODS)[number]
/** Safe to send twice (RFC 9110 §9.2.2): retried by default. */
export const IDEMPOTENT = new Set<string>(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

/** Upstream and route names: they label metrics and stats, so they are short and plain. */
export const NAME = '^[a-z][a-z0-9_-]{0,62}$'

const Ms = (max: number) => Type.Integer({ minimum: 1, maximum: max })
const opt = <T extends Parameters<typeof Type.Optional>[0]>(t: T) => Type.Optional(t)

const TargetFile = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048 }),
    weight: opt(Type.Integer({ minimum: 1, maximum: 1000 })),
  },
  { additionalProperties: false },
)

const Discover = Type.Union([
  Type.Object({ kv: Type.String({ pattern: NAME }) }, { additionalProperties: false }),
  Type.Object(
    { consul: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.-]+$' }), scheme: opt(Type.Union([Type.Literal('http'), Type.Literal('https')])) },
    { additionalProperties: false },
  ),
])

const HeaderName = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" })

export const UpstreamFile = Type.Object(
  {
    balancer: opt(Type.String()),
    targets: opt(Type.Array(TargetFile, { maxItems: 256 })),
    discover: opt(Discover),
    timeouts: opt(
      Type.Object(
        { connectMs: opt(Ms(60_000)), tryMs: opt(Ms(600_000)), requestMs: opt(Ms(600_000)), idleMs: opt(Ms(3_600_000)) },
        { additionalProperties: false },
      ),
    ),
    retry: opt(
      Type.Object(
        {
          retries: opt(Type.Integer({ minimum: 0, maximum: 10 })),
          statuses: opt(Type.Array(Type.Integer({ minimum: 500, maximum: 599 }), { maxItems: 20 })),
          backoffBaseMs: opt(Type.Integer({ minimum: 0, maximum: 10_000 })),
          backoffMaxMs: opt(Type.Integer({ minimum: 0, maximum: 60_000 })),
          budgetPercent: opt(Type.Number({ minimum: 0, maximum: 100 })),
          minRetryConcurrency: opt(Type.Integer({ minimum: 0, maximum: 10_000 })),
          bufferBytes: opt(Type.Integer({ minimum: 0, maximum: 16 * 1024 * 1024 })),
        },
        { additionalProperties: false },
      ),
    ),
    breaker: opt(
      Type.Object(
        {
          enabled: opt(Type.Boolean()),
          errorThresholdPercent: opt(Type.Number({ minimum: 1, maximum: 100 })),
          volumeThreshold: opt(Type.Integer({ minimum: 1, maximum: 100_000 })),
          resetTimeoutMs: opt(Ms(3_600_000)),
          windowMs: opt(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    outlier: opt(
      Type.Object(
        {
          consecutiveFailures: opt(Type.Integer({ minimum: 1, maximum: 1000 })),
          baseEjectionMs: opt(Ms(3_600_000)),
          maxEjectionMs: opt(Ms(86_400_000)),
          maxEjectedPercent: opt(Type.Integer({ minimum: 0, maximum: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    healthCheck: opt(
      Type.Object(
        {
          path: Type.String({ minLength: 1, maxLength: 512, pattern: '^/' }),
          intervalMs: opt(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
          timeoutMs: opt(Ms(60_000)),
          unhealthyThreshold: opt(Type.Integer({ minimum: 1, maximum: 100 })),
          healthyThreshold: opt(Type.Integer({ minimum: 1, maximum: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    connections: opt(Type.Integer({ minimum: 1, maximum: 4096 })),
    maxPending: opt(Type.Integer({ minimum: 1, maximum: 100_000 })),
    stripRequestHeaders: opt(Type.Array(HeaderName, { maxItems: 64 })),
    stripResponseHeaders: opt(Type.Array(HeaderName, { maxItems: 64 })),
    tls: opt(
      Type.Object(
        { caFile: opt(Type.String({ minLength: 1, maxLength: 4096 })), insecure: opt(Type.Boolean()), serverName: opt(Type.String({ minLength: 1, maxLength: 255 })) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)
export type UpstreamFile = Static<typeof UpstreamFile>

const Policy = Type.Union([
  Type.Literal('public'),
  Type.Literal('authenticated'),
  Type.Object(
    { roles: Type.Array(Type.Union([Type.Literal('admin'), Type.Literal('customer'), Type.Literal('client'), Type.Literal('root')]), { minItems: 1, maxItems: 8 }) },
    { additionalProperties: false },
  ),
])

export const RouteFile = Type.Object(
  {
    path: Type.String({ minLength: 1, maxLength: 512 }),
    upstream: Type.String({ minLength: 1, maxLength: 64 }),
    methods: opt(Type.Array(Type.String(), { minItems: 1, maxItems: PROXY_METHODS.length })),
    stripPrefix: opt(Type.Boolean()),
    auth: opt(Policy),
    rateLimit: opt(
      Type.Object(
        { capacity: Type.Integer({ minimum: 1, maximum: 1_000_000 }), refillPerSec: Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 }) },
        { additionalProperties: false },
      ),
    ),
    retryNonIdempotent: opt(Type.Boolean()),
    meta: opt(Type.Boolean()),
    timeoutMs: opt(Ms(600_000)),
    bodyLimitBytes: opt(Type.Integer({ minimum: 0, maximum: 1024 ** 4 })),
    graphql: opt(GraphqlRouteFile),
    websocket: opt(
      Type.Union([
        Type.Boolean(),
        Type.Object(
          { maxMessageBytes: opt(Type.Integer({ minimum: 125, maximum: 268_435_456 })), idleTimeoutMs: opt(Type.Integer({ minimum: 1000, maximum: 86_400_000 })) },
          { additionalProperties: false },
        ),
      ]),
    ),
  },
  { additionalProperties: false },
)
export type RouteFile = Static<typeof RouteFile>

export const ServicesFile = Type.Object(
  {
    upstreams: Type.Record(Type.String(), UpstreamFile, { maxProperties: 256 }),
    routes: opt(Type.Array(RouteFile, { maxItems: 1000 })),
  },
  { additionalProperties: false },
)
export type ServicesFile = Static<typeof ServicesFile>

/** The Nexus shape: one list of instances, served under /api/*. */
export const NexusFile = Type.Object(
  {
    services: Type.Array(TargetFile, { minItems: 1, maxItems: 256 }),
    balancer: opt(Type.String()),
    auth: opt(Policy),
  },
  { additionalProperties: false },
)
export type NexusFile = Static<typeof NexusFile>

// ---- the normalised form ----

export interface TargetSpec {
  /** origin + base path, no trailing slash: `http://10.0.0.5:8080` or `http://10.0.0.5:8080/v2`. */
  url: string
  weight: number
}

export interface UpstreamSpec {
  name: string
  balancer: BalancerName
  targets: TargetSpec[]
  discover: { kv: string } | { consul: string; scheme: 'http' | 'https' } | undefined
  timeouts: { connectMs: number; tryMs: number; requestMs: number; idleMs: number }
  retry: {
    retries: number
    statuses: ReadonlySet<number>
    backoffBaseMs: number
    backoffMaxMs: number
    budgetPercent: number
    minRetryConcurrency: number
    bufferBytes: number
  }
  breaker: { enabled: boolean; errorThresholdPercent: number; volumeThreshold: number; resetTimeoutMs: number; windowMs: number }
  outlier: { consecutiveFailures: number; baseEjectionMs: number; maxEjectionMs: number; maxEjectedPercent: number }
  healthCheck: { path: string; intervalMs: number; timeoutMs: number; unhealthyThreshold: number; healthyThreshold: number } | undefined
  connections: number
  maxPending: number
  stripRequestHeaders: ReadonlySet<string>
  stripResponseHeaders: ReadonlySet<string>
  tls: { ca: string | undefined; insecure: boolean; serverName: string | undefined } | undefined
}

export interface RouteSpec {
  /** The route template: `/api/products/*` (a prefix) or `/api/products/:id`. */
  path: string
  upstream: string
  methods: readonly ProxyMethod[]
  /** The static part removed before forwarding (empty when the route keeps its path). */
  stripPrefix: string
  auth: AuthPolicy
  rateLimit: { capacity: number; refillPerSec: number } | undefined
  retryNonIdempotent: boolean
  meta: boolean
  timeoutMs: number | undefined
  bodyLimitBytes: number
  /** A GraphQL route's settings (server/upstream/graphql.ts); undefined for a plain proxy route. */
  graphql: GraphqlSettings | undefined
  /** Upgrades to WebSocket allowed (off when undefined); unset limits are the gateway's (WS_*). */
  websocket: { maxMessageBytes: number | undefined; idleTimeoutMs: number | undefined } | undefined
}

export interface ServicesSpec {
  upstreams: ReadonlyMap<string, UpstreamSpec>
  routes: readonly RouteSpec[]
}

/** The Nexus proxy's default request header strip list, kept as ours. */
export const DEFAULT_STRIP_REQUEST_HEADERS = ['x-internal-secret', 'x-admin-override']

export const DEFAULTS = {
  balancer: 'round-robin' as BalancerName,
  timeouts: { connectMs: 2000, tryMs: 5000, requestMs: 15_000, idleMs: 30_000 },
  retry: { retries: 2, statuses: [502, 503, 504], backoffBaseMs: 25, backoffMaxMs: 250, budgetPercent: 20, minRetryConcurrency: 3, bufferBytes: 64 * 1024 },
  breaker: { enabled: true, errorThresholdPercent: 50, volumeThreshold: 10, resetTimeoutMs: 10_000, windowMs: 10_000 },
  outlier: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectedPercent: 50 },
  healthCheck: { intervalMs: 5000, timeoutMs: 1000, unhealthyThreshold: 2, healthyThreshold: 2 },
  connections: 128,
  maxPending: 2048,
}
