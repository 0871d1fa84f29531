// The gateway's route table, built from what flows publish in $SRV.INFO. Each discovered endpoint
// becomes a route whose validator is compiled once (and shared by every route with the same schema);
// a request then pays one router lookup. The table is replaced whole when discovery sees a change.
import { Ajv, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import FindMyWay from 'find-my-way'
import type { EndpointInfo } from 'nats'
import { AuthPolicyCheck, type AuthPolicy } from '../lib/auth.js'
import { metadata as META } from '../lib/subjects.js'

// ajv-formats is CommonJS with a default export; under NodeNext it arrives wrapped.
type AddFormats = (ajv: Ajv) => Ajv
const addFormats: AddFormats =
  (addFormatsModule as unknown as { default?: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats)

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
const METHODS = new Set<string>(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])

export interface FlowRoute {
  flow: string
  subject: string
  method: Method
  path: string
  auth: AuthPolicy
  timeoutMs: number | undefined
  summary: string | undefined
  inputSchema: Record<string, unknown>
  outputSchema: Record<string, unknown> | undefined
  successStatus: number
  /** Takes application/x-www-form-urlencoded bodies as well as JSON. */
  form: boolean
  validate: ValidateFunction
  /** Converts query/path strings to the numbers and booleans the schema asks for. */
  coerce: Array<[key: string, to: 'number' | 'integer' | 'boolean']>
}

export interface RouteTable {
  readonly routes: readonly FlowRoute[]
  find(method: string, path: string): { route: FlowRoute; params: Record<string, string | undefined> } | undefined
  /** The methods some route serves the path with (for 405 and its `Allow`). */
  methodsOf(path: string): Method[]
}

const MAX_SCHEMAS = 1000
const MAX_SCHEMA_BYTES = 256 * 1024

/** Compiles discovered JSON Schemas; a bounded cache keyed by the schema text. */
export function createSchemaCompiler() {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, coerceTypes: false, strict: false, validateSchema: true })
  addFormats(ajv)
  const cache = new Map<string, ValidateFunction>()
  return (text: string): ValidateFunction => {
    const hit = cache.get(text)
    if (hit) return hit
    const fn = ajv.compile(JSON.parse(text) as object)
    if (cache.size >= MAX_SCHEMAS) {
      const oldest = cache.keys().next().value as string
      cache.delete(oldest)
      // Ajv keeps its own copy of every compiled schema: clear it too, or the bound is only ours.
      // Functions already compiled (those still in `cache`) keep working.
      ajv.removeSchema()
    }
    cache.set(text, fn)
    return fn
  }
}

/** One discovered endpoint as a route, or a reason it was skipped; `warn` hears what was served despite a flaw. */
export function routeFromEndpoint(ep: EndpointInfo, compile: (schema: string) => ValidateFunction, warn: (reason: string) => void = () => {}): FlowRoute | string {
  const m = ep.metadata ?? {}
  const flow = m[META.flow]
  if (!flow) return 'not a flowgate flow'
  const method = m[META.method]
  const path = m[META.path]
  if (!method || !path) return 'no HTTP binding'
  if (!METHODS.has(method)) return `unsupported method ${method}`
  if (!path.startsWith('/') || path.length > 512) return `bad path ${path}`
  const inputText = m[META.input] ?? '{"type":"object"}'
  if (inputText.length > MAX_SCHEMA_BYTES) return 'input schema too large'
  let auth: unknown
  let validate: ValidateFunction
  try {
    auth = JSON.parse(m[META.auth] ?? '"authenticated"')
    validate = compile(inputText)
  } catch (err) {
    return `bad metadata: ${err instanceof Error ? err.message : String(err)}`
  }
  // An unknown or malformed policy never opens a flow up: it is served as admin-only.
  const policy: AuthPolicy = AuthPolicyCheck.Check(auth) ? auth : { roles: ['admin'] }
  const inputSchema = JSON.parse(inputText) as Record<string, unknown>
  const timeout = Number(m[META.timeoutMs])
  const status = Number(m[META.status])
  let outputSchema: Record<string, unknown> | undefined
  try {
    const out = m[META.output]
    outputSchema = out ? (JSON.parse(out) as Record<string, unknown>) : undefined
  } catch (err) {
    // Only the docs use it: the route is served, and the docs show no output schema.
    warn(`output schema ignored: ${err instanceof Error ? err.message : String(err)}`)
  }
  return {
    flow,
    subject: ep.subject,
    method: method as Method,
    path,
    auth: policy,
    timeoutMs: Number.isInteger(timeout) && timeout > 0 ? timeout : undefined,
    summary: m[META.summary],
    inputSchema,
    outputSchema,
    successStatus: Number.isInteger(status) ? status : 200,
    form: m[META.form] === 'true',
    validate,
    coerce: coercions(inputSchema),
  }
}

function coercions(schema: Record<string, unknown>): FlowRoute['coerce'] {
  const props = (schema.properties ?? {}) as Record<string, { type?: unknown }>
  const out: FlowRoute['coerce'] = []
  for (const [key, prop] of Object.entries(props)) {
    if (prop.type === 'number' || prop.type === 'integer' || prop.type === 'boolean') out.push([key, prop.type])
  }
  return out
}

export function buildRouteTable(routes: FlowRoute[]): RouteTable {
  const router = FindMyWay({ ignoreTrailingSlash: true, caseSensitive: true, maxParamLength: 200 })
  const kept: FlowRoute[] = []
  for (const route of routes) {
    // Two flows claiming one method+path: the first (by flow name) keeps it.
    if (router.find(route.method, route.path)) continue
    router.on(route.method, route.path, () => {}, route)
    kept.push(route)
  }
  return {
    routes: kept,
    find(method, path) {
      const found = router.find(method as Method, path)
      if (!found) return undefined
      return { route: found.store as FlowRoute, params: found.params }
    },
    methodsOf(path) {
      const found: Method[] = []
      for (const m of METHODS) if (router.find(m as Method, path)) found.push(m as Method)
      return found
    },
  }
}

/** Query and path strings as the numbers/booleans the schema expects; anything else is left for the validator to reject. */
export function coerceInPlace(input: Record<string, unknown>, coerce: FlowRoute['coerce'], from: ReadonlySet<string>): void {
  for (const [key, to] of coerce) {
    // Own properties only: a schema (from the bus) may name `__proto__`; the input's prototype is not an input.
    if (!from.has(key) || !Object.hasOwn(input, key)) continue
    const v = input[key]
    if (typeof v !== 'string') continue
    if (to === 'boolean') {
      if (v === 'true') input[key] = true
      else if (v === 'false') input[key] = false
    } else if (v.trim() !== '' && Number.isFinite(Number(v))) {
      input[key] = Number(v)
    }
  }
}
