// A GraphQL-over-HTTP request's parameters (`query`, `operationName`, `variables`, `extensions`),
// from a GET's query string or a POST's JSON body, checked for shape only. The gateway and the
// upstream must read the same request: a parameter given twice (which one would each take?) and
// GraphQL parameters in a POST's URL (some servers merge them with the body) are refused.
import { MAX_OPERATION_NAME } from './graphql-settings.js'
import { refusal, type Refusal } from './graphql-document.js'

export interface GraphqlParams {
  query: string
  /** Undefined when absent, null or empty. */
  operationName: string | undefined
}

const PARAMS = ['query', 'operationName', 'variables', 'extensions'] as const
const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/

/** A GET's parameters; undefined when the query string carries none (a GraphiQL page, say: nothing runs). */
export function paramsFromSearch(search: string): GraphqlParams | Refusal | undefined {
  const qs = new URLSearchParams(search)
  let any = false
  for (const key of PARAMS) {
    const n = qs.getAll(key).length
    if (n > 1) return refusal('INVALID_REQUEST', `"${key}" is given more than once`)
    any ||= n === 1
  }
  if (!any) return undefined
  const query = qs.get('query')
  if (query === null) return refusal('INVALID_REQUEST', 'A GraphQL request needs a "query" string')
  for (const key of ['variables', 'extensions'] as const) {
    const text = qs.get(key)
    // The empty string is the same as no parameter (GraphQL over HTTP, GET).
    if (text === null || text === '') continue
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      return refusal('INVALID_REQUEST', `"${key}" must be a JSON-encoded object`)
    }
    if (!isMap(value) && value !== null) return refusal('INVALID_REQUEST', `"${key}" must be a JSON-encoded object`)
  }
  return withName(query, qs.get('operationName'))
}

/** Whether a POST's URL carries GraphQL parameters (refused: the body is the request). */
export function searchHasParams(search: string): boolean {
  if (search === '') return false
  const qs = new URLSearchParams(search)
  return PARAMS.some((key) => qs.has(key))
}

/** A POST's JSON body (its text): a JSON object with a string `query`. */
export function paramsFromBody(text: string): GraphqlParams | Refusal {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return refusal('BAD_REQUEST', 'The body is not JSON')
  }
  if (Array.isArray(body)) return refusal('INVALID_REQUEST', 'Batched requests (a JSON array) are not supported')
  if (!isMap(body)) return refusal('INVALID_REQUEST', 'The body must be a JSON object')
  const twice = repeatedKey(text)
  if (twice !== undefined) return refusal('INVALID_REQUEST', `"${twice}" is given more than once`)
  const query = own(body, 'query')
  if (typeof query !== 'string') return refusal('INVALID_REQUEST', 'A GraphQL request needs a "query" string')
  for (const key of ['variables', 'extensions'] as const) {
    const value = own(body, key)
    if (value !== undefined && value !== null && !isMap(value)) return refusal('INVALID_REQUEST', `"${key}" must be an object`)
  }
  const name = own(body, 'operationName')
  if (name !== undefined && name !== null && typeof name !== 'string') return refusal('INVALID_REQUEST', '"operationName" must be a string')
  return withName(query, name ?? null)
}

function withName(query: string, name: string | null): GraphqlParams | Refusal {
  if (name === null || name === '') return { query, operationName: undefined }
  // Checked before it is looked up, echoed or used as a label: a name is short and spelled as GraphQL's Name.
  if (name.length > MAX_OPERATION_NAME || !NAME.test(name)) {
    return refusal('INVALID_REQUEST', `"operationName" must be a GraphQL name of at most ${MAX_OPERATION_NAME} characters`)
  }
  return { query, operationName: name }
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
/**
 * A GraphQL parameter named twice at the top level of a JSON object text that parsed, if any.
 * JSON.parse keeps the last of duplicate keys, and other parsers may keep the first: by hand,
 * because no JSON parser at hand reports duplicates. Keys are decoded, so an escaped spelling
 * (`"\u0071uery"`) counts as the same name.
 */
function repeatedKey(text: string): string | undefined {
  const seen = new Set<string>()
  let depth = 0
  let keyNext = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const start = i
      for (i++; text.charCodeAt(i) !== QUOTE; i++) if (text.charCodeAt(i) === BACKSLASH) i++
      if (depth !== 1 || !keyNext) continue
      keyNext = false
      const key = JSON.parse(text.slice(start, i + 1)) as string
      if (!(PARAMS as readonly string[]).includes(key)) continue
      if (seen.has(key)) return key
      seen.add(key)
    } else if (c === 0x7b || c === 0x5b) {
      depth++
      keyNext = depth === 1
    } else if (c === 0x7d || c === 0x5d) depth--
    else if (c === 0x2c && depth === 1) keyNext = true
  }
  return undefined
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A parsed JSON object's own property (JSON.parse makes `__proto__` an own key; nothing inherited is read). */
function own(body: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(body, key) ? body[key] : undefined
}
