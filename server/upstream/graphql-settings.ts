// What a proxy route's `graphql` setting may say, and the normalised form the gateway runs on.
// `graphql: true` takes every default; an object overrides some. Limits are off or generous by
// default; the token limit and the nesting bound are always on, since they keep the parser itself
// safe (graphql-js parses by recursion and overflows the stack near 2,000 levels).
import { Type, type Static } from '@sinclair/typebox'

/** Brackets (`{`, `(`, `[`) open at once, and fragment spreads followed in a row: past it, refused before parsing. */
export const MAX_NESTING = 256
/** Operation names longer than this are refused as `operationName` and labelled `other`. */
export const MAX_OPERATION_NAME = 128

const opt = <T extends Parameters<typeof Type.Optional>[0]>(t: T) => Type.Optional(t)
const Count = (max: number) => Type.Integer({ minimum: 1, maximum: max })

export const GraphqlRouteFile = Type.Union([
  Type.Boolean(),
  Type.Object(
    {
      maxDocumentBytes: opt(Count(16 * 1024 * 1024)),
      maxTokens: opt(Count(1_000_000)),
      maxDepth: opt(Count(MAX_NESTING)),
      maxAliases: opt(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
      maxRootFields: opt(Count(1_000_000)),
      introspection: opt(Type.Boolean()),
      retryQueries: opt(Type.Boolean()),
      maxOperationNames: opt(Type.Integer({ minimum: 0, maximum: 10_000 })),
      recordDocument: opt(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
])
export type GraphqlRouteFile = Static<typeof GraphqlRouteFile>

export interface GraphqlSettings {
  /** The `query` string's size in UTF-8 bytes (the POST body is bounded by the route's `bodyLimitBytes` too). */
  maxDocumentBytes: number
  /** Lexical tokens in the document (graphql-js's `maxTokens`). */
  maxTokens: number
  /** Fields nested in the chosen operation (a root field is depth 1), fragments followed; undefined: off. */
  maxDepth: number | undefined
  /** Aliased fields in the chosen operation, each fragment counted at every spread; undefined: off. */
  maxAliases: number | undefined
  /** Fields in the operation's root selection (through fragments at the root); undefined: off. */
  maxRootFields: number | undefined
  /** Whether `__schema` and `__type` may be asked for. */
  introspection: boolean
  /** Retry a query sent by POST like an idempotent request (a mutation is never retried). */
  retryQueries: boolean
  /** Distinct operation names this route labels metrics with; later ones are `other`. */
  maxOperationNames: number
  /** Put the document on the span as `graphql.document` (documents may hold secrets: off by default). */
  recordDocument: boolean
}

export const GRAPHQL_DEFAULTS: GraphqlSettings = Object.freeze({
  maxDocumentBytes: 1024 * 1024,
  maxTokens: 15_000,
  maxDepth: undefined,
  maxAliases: undefined,
  maxRootFields: undefined,
  introspection: true,
  retryQueries: true,
  maxOperationNames: 100,
  recordDocument: false,
})

/** Methods a GraphQL route may serve: GET and POST carry operations; OPTIONS passes through (CORS preflight). */
export const GRAPHQL_METHODS = ['GET', 'POST', 'OPTIONS'] as const
export const GRAPHQL_DEFAULT_METHODS = ['GET', 'POST'] as const

/** The route's settings, or undefined when it is not a GraphQL route. */
export function graphqlSettings(file: GraphqlRouteFile | undefined): GraphqlSettings | undefined {
  if (file === undefined || file === false) return undefined
  if (file === true) return GRAPHQL_DEFAULTS
  return Object.freeze({ ...GRAPHQL_DEFAULTS, ...file })
}
