// What a GraphQL document asks for, learned once at the gateway with graphql-js: the operation that
// runs (chosen by `operationName` as the spec's GetOperation does) and whether it stays within the
// route's limits. Hostile input is bounded before the parser sees it: graphql-js parses by recursion
// and overflows the stack near 2,000 nested brackets whatever `maxTokens` says, so one pass of its
// own lexer (a loop, no recursion) counts the tokens and the bracket nesting first. The measuring
// walk below follows fragments with a memo (a fragment spread many times is measured once) and a
// cycle check, and its recursion is bounded by the same nesting limit.
import {
  GraphQLError,
  Kind,
  Lexer,
  parse,
  Source,
  TokenKind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql'
import { MAX_NESTING, type GraphqlSettings } from './graphql-settings.js'

export type OperationType = 'query' | 'mutation' | 'subscription'

export interface Operation {
  type: OperationType
  /** Undefined for an anonymous operation. */
  name: string | undefined
}

/** Why the gateway answers a request itself (the GraphQL-over-HTTP status of each is in graphql-answer.ts). */
export type RefusalCode =
  | 'BAD_REQUEST'
  | 'INVALID_REQUEST'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'METHOD_NOT_ALLOWED'
  | 'GRAPHQL_PARSE_FAILED'
  | 'GRAPHQL_VALIDATION_FAILED'
  | 'OPERATION_RESOLUTION_FAILURE'

export interface Refusal {
  refused: RefusalCode
  message: string
  locations?: ReadonlyArray<{ line: number; column: number }>
  /** The operation, when it was known before the refusal (a limit it breaks). */
  operation?: Operation
}

export type Analysis = { operation: Operation } | Refusal

/** Longest message the gateway echoes: a parse error quotes the client's token, which may be huge. */
const MAX_MESSAGE = 200

const OPENING = new Set<string>([TokenKind.BRACE_L, TokenKind.PAREN_L, TokenKind.BRACKET_L])
const CLOSING = new Set<string>([TokenKind.BRACE_R, TokenKind.PAREN_R, TokenKind.BRACKET_R])

export function refusal(refused: RefusalCode, message: string): Refusal {
  return { refused, message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message }
}

/** The operation `operationName` (or the only one) of `query`, within the route's limits, or why not. */
export function analyseDocument(query: string, operationName: string | undefined, limits: GraphqlSettings): Analysis {
  // A UTF-16 code unit is 1 to 3 UTF-8 bytes: the byte count is needed only near the limit.
  if (query.length > limits.maxDocumentBytes || (query.length * 3 > limits.maxDocumentBytes && Buffer.byteLength(query) > limits.maxDocumentBytes)) {
    return refusal('PAYLOAD_TOO_LARGE', `The document is larger than ${limits.maxDocumentBytes} bytes`)
  }
  let doc: DocumentNode
  try {
    const bound = scan(query, limits.maxTokens)
    if (bound !== undefined) return bound
    doc = parse(query, { noLocation: true, maxTokens: limits.maxTokens })
  } catch (err) {
    if (err instanceof GraphQLError) return { ...refusal('GRAPHQL_PARSE_FAILED', err.message), ...(err.locations ? { locations: err.locations } : {}) }
    throw err
  }
  const chosen = chooseOperation(doc, operationName)
  if ('refused' in chosen) return chosen
  const { op, fragments } = chosen
  const operation: Operation = { type: op.operation as OperationType, name: op.name?.value }
  const invalid = (message: string): Refusal => ({ ...refusal('GRAPHQL_VALIDATION_FAILED', message), operation })
  let m: Measure
  try {
    m = new Measurer(fragments).selectionSet(op.selectionSet, 0)
  } catch (err) {
    if (err instanceof Refused) return { ...err.refusal, operation }
    throw err
  }
  if (!limits.introspection && m.introspection) return invalid('Introspection is disabled on this route')
  if (limits.maxDepth !== undefined && m.depth > limits.maxDepth) return invalid(`The operation is ${m.depth} fields deep; at most ${limits.maxDepth} are allowed`)
  if (limits.maxAliases !== undefined && m.aliases > limits.maxAliases) return invalid(`The operation has more than ${limits.maxAliases} aliases`)
  if (limits.maxRootFields !== undefined && m.fields > limits.maxRootFields) return invalid(`The operation asks for more than ${limits.maxRootFields} root fields`)
  return { operation }
}

/** One lexer pass: a token count over `maxTokens` or brackets nested past MAX_NESTING refuse the document unparsed. */
function scan(query: string, maxTokens: number): Refusal | undefined {
  const lexer = new Lexer(new Source(query))
  let tokens = 0
  let open = 0
  for (let t = lexer.advance(); t.kind !== TokenKind.EOF; t = lexer.advance()) {
    if (++tokens > maxTokens) return refusal('GRAPHQL_PARSE_FAILED', `Syntax Error: Document contains more than ${maxTokens} tokens. Parsing aborted.`)
    if (OPENING.has(t.kind)) {
      if (++open > MAX_NESTING) return refusal('GRAPHQL_PARSE_FAILED', `The document nests brackets deeper than ${MAX_NESTING} levels`)
    } else if (CLOSING.has(t.kind)) open--
  }
  return undefined
}

function chooseOperation(doc: DocumentNode, operationName: string | undefined): { op: OperationDefinitionNode; fragments: Map<string, FragmentDefinitionNode> } | Refusal {
  const fragments = new Map<string, FragmentDefinitionNode>()
  const named = new Set<string>()
  let op: OperationDefinitionNode | undefined
  let ops = 0
  for (const d of doc.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) {
      // Two fragments of one name are invalid (and which one an upstream takes is its own choice).
      if (fragments.has(d.name.value)) return refusal('GRAPHQL_VALIDATION_FAILED', `There can be only one fragment named "${d.name.value}".`)
      fragments.set(d.name.value, d)
    } else if (d.kind === Kind.OPERATION_DEFINITION) {
      ops++
      const name = d.name?.value
      if (name !== undefined) {
        if (named.has(name)) return refusal('GRAPHQL_VALIDATION_FAILED', `There can be only one operation named "${name}".`)
        named.add(name)
      }
      if (operationName === undefined ? op === undefined : name === operationName) op ??= d
    }
    // Type system definitions are the upstream's to refuse: they run nothing.
  }
  if (operationName !== undefined && op === undefined) return refusal('OPERATION_RESOLUTION_FAILURE', `Unknown operation named "${operationName}".`)
  if (operationName === undefined && ops > 1) return refusal('OPERATION_RESOLUTION_FAILURE', 'Must provide operation name if query contains multiple operations.')
  if (op === undefined) return refusal('GRAPHQL_VALIDATION_FAILED', 'The document holds no operation')
  return { op, fragments }
}

interface Measure {
  /** Fields nested (a leaf root field is 1). */
  depth: number
  /** Aliased fields, a fragment counted at each spread. */
  aliases: number
  /** Fields at this selection's own level (through fragments). */
  fields: number
  introspection: boolean
}

class Refused extends Error {
  constructor(readonly refusal: Refusal) {
    super(refusal.message)
  }
}

class Measurer {
  private readonly memo = new Map<string, Measure>()
  private readonly open = new Set<string>()

  constructor(private readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>) {}

  selectionSet(set: SelectionSetNode, hops: number): Measure {
    // Selection sets nest at most MAX_NESTING deep (the scan saw to it); fragment spreads in a row add hops too.
    if (hops > MAX_NESTING) throw new Refused(refusal('GRAPHQL_VALIDATION_FAILED', `The operation nests deeper than ${MAX_NESTING} levels through its fragments`))
    const m: Measure = { depth: 0, aliases: 0, fields: 0, introspection: false }
    for (const s of set.selections) {
      if (s.kind === Kind.FIELD) {
        m.fields++
        if (s.alias !== undefined) m.aliases++
        if (s.name.value === '__schema' || s.name.value === '__type') m.introspection = true
        if (s.selectionSet === undefined) {
          m.depth = Math.max(m.depth, 1)
          continue
        }
        const child = this.selectionSet(s.selectionSet, hops + 1)
        m.depth = Math.max(m.depth, child.depth + 1)
        m.aliases += child.aliases
        m.introspection ||= child.introspection
        continue
      }
      const child = s.kind === Kind.INLINE_FRAGMENT ? this.selectionSet(s.selectionSet, hops + 1) : this.fragment(s.name.value, hops + 1)
      // An unknown fragment measures nothing: the upstream refuses the document.
      if (child === undefined) continue
      m.depth = Math.max(m.depth, child.depth)
      m.aliases += child.aliases
      m.fields += child.fields
      m.introspection ||= child.introspection
    }
    return m
  }

  private fragment(name: string, hops: number): Measure | undefined {
    const known = this.memo.get(name)
    if (known !== undefined) return known
    const def = this.fragments.get(name)
    if (def === undefined) return undefined
    if (this.open.has(name)) throw new Refused(refusal('GRAPHQL_VALIDATION_FAILED', `Cannot spread fragment "${name}" within itself.`))
    this.open.add(name)
    const m = this.selectionSet(def.selectionSet, hops)
    this.open.delete(name)
    this.memo.set(name, m)
    return m
  }
}
