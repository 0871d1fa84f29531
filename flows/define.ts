// A flow is declared once. From the declaration come its subject, its compiled input and output
// checks (built here, at definition, never per request), its TypeScript types and the metadata the
// gateway discovers (HTTP binding, auth policy, JSON Schemas).
import type { Static, TObject, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { AuthPolicyCheck, type AuthPolicy } from '../lib/auth.js'
import { metadata as META, subjects } from '../lib/subjects.js'
import type { FlowContext } from './context.js'

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export interface HttpBinding {
  method: HttpMethod
  /** Path under /api/v1, Fastify style (`/orders/:id`); from the root instead with `root: true`. */
  path: string
  /** Mount at the path as given rather than under /api/v1 (e.g. POST /auth/token). */
  root?: boolean
  /** Status of a plain successful return (default 200). */
  status?: number
  /** Also take an application/x-www-form-urlencoded body (what OAuth2 token clients send); JSON otherwise only. */
  form?: boolean
}

/** A result with an explicit status (e.g. 201). Plain return values mean 200. */
export interface FlowResult<T> {
  readonly [RESULT]: true
  readonly data: T
  readonly status: number
}
const RESULT = Symbol('flowgate.result')

export function ok<T>(data: T, status = 200): FlowResult<T> {
  return { [RESULT]: true, data, status }
}

export function isFlowResult(value: unknown): value is FlowResult<unknown> {
  return typeof value === 'object' && value !== null && RESULT in value
}

export interface FlowSpec<I extends TObject, O extends TSchema> {
  /** `<domain>.<action>` (or a single word such as `healthcheck`). */
  name: string
  summary?: string
  input: I
  output: O
  http?: HttpBinding
  auth: AuthPolicy
  /** This flow's own deadline; the gateway's REQUEST_TIMEOUT_MS otherwise. */
  timeoutMs?: number
  run(input: Static<I>, ctx: FlowContext): Promise<Static<O> | FlowResult<Static<O>>>
}

export interface Flow<I extends TObject = TObject, O extends TSchema = TSchema> extends FlowSpec<I, O> {
  readonly subject: string
  /** The micro-service endpoint name (dots are not allowed there). */
  readonly endpoint: string
  readonly inputCheck: TypeCheck<I>
  readonly outputCheck: TypeCheck<O>
  /** Whether the input schema declares defaults (applied before the check). */
  readonly hasDefaults: boolean
}

const NAME = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/
const PATH = /^(\/[A-Za-z0-9_.~:-]+)+$|^\/$/

/** Declares a flow; fails at start-up (not per request) on a bad name, path or policy. */
export function defineFlow<I extends TObject, O extends TSchema>(spec: FlowSpec<I, O>): Flow<I, O> {
  if (!NAME.test(spec.name)) throw new Error(`flow name "${spec.name}" must be lower-case words joined by dots`)
  if (spec.http && !PATH.test(spec.http.path)) throw new Error(`flow ${spec.name}: bad HTTP path "${spec.http.path}"`)
  if (!AuthPolicyCheck.Check(spec.auth)) throw new Error(`flow ${spec.name}: bad auth policy`)
  return Object.freeze({
    ...spec,
    subject: subjects.flow(spec.name),
    endpoint: spec.name.replaceAll('.', '-'),
    inputCheck: TypeCompiler.Compile(spec.input),
    outputCheck: TypeCompiler.Compile(spec.output),
    hasDefaults: JSON.stringify(spec.input).includes('"default":'),
  })
}

export const API_PREFIX = '/api/v1'

/** The full HTTP path of a binding. */
export function httpPath(http: HttpBinding): string {
  return http.root ? http.path : `${API_PREFIX}${http.path === '/' ? '' : http.path}`
}

export function flowMetadata(flow: Flow): Record<string, string> {
  const meta: Record<string, string> = {
    [META.flow]: flow.name,
    [META.auth]: JSON.stringify(flow.auth),
    [META.input]: JSON.stringify(flow.input),
    [META.output]: JSON.stringify(flow.output),
  }
  if (flow.http) {
    meta[META.method] = flow.http.method
    meta[META.path] = httpPath(flow.http)
    meta[META.status] = String(flow.http.status ?? 200)
    if (flow.http.form) meta[META.form] = 'true'
  }
  if (flow.timeoutMs) meta[META.timeoutMs] = String(flow.timeoutMs)
  if (flow.summary) meta[META.summary] = flow.summary
  return meta
}
