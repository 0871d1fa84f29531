// Schema failures as the envelope's `detailed` list: a field path (dots, `items.0.sku`) and a message.
// Both checkers end here: TypeBox's compiled checks in flows and Ajv at the edge (where schemas
// arrive as plain JSON Schema through discovery).
import type { ValueErrorIterator } from '@sinclair/typebox/errors'
import type { ErrorObject } from 'ajv'
import type { FieldError } from './errors.js'

const MAX_DETAILS = 20

/**
 * Text PostgreSQL can store: its text types hold no U+0000 (an insert or a lookup with one fails
 * with SQLSTATE 22021). Every string a flow stores or looks up by carries this pattern, so the caller
 * hears which field is wrong instead of getting a 500 from the database.
 */
export const STORABLE_TEXT = '^[^\\u0000]*$'
/** Patterns whose failure reads better in words than as the expression. */
const PATTERN_MESSAGES: ReadonlyMap<string, string> = new Map([[STORABLE_TEXT, 'must not contain NUL (U+0000) characters']])

const field = (pointer: string) => pointer.replace(/^\//, '').replaceAll('/', '.').replaceAll('~1', '/').replaceAll('~0', '~')

export function typeboxFieldErrors(iterator: ValueErrorIterator): FieldError[] {
  const out: FieldError[] = []
  const seen = new Set<string>()
  for (const e of iterator) {
    const f = field(e.path)
    // TypeBox reports every union branch; the first message per field is the useful one.
    if (seen.has(f)) continue
    seen.add(f)
    const pattern = (e.schema as { pattern?: unknown }).pattern
    out.push({ field: f, message: (typeof pattern === 'string' && PATTERN_MESSAGES.get(pattern)) || e.message })
    if (out.length >= MAX_DETAILS) break
  }
  return out
}

export function ajvFieldErrors(list: readonly ErrorObject[] | null | undefined): FieldError[] {
  const out: FieldError[] = []
  const seen = new Set<string>()
  for (const e of list ?? []) {
    let f = field(e.instancePath)
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty
      f = f ? `${f}.${missing}` : missing
      message = 'is required'
    } else if (e.keyword === 'pattern') {
      message = PATTERN_MESSAGES.get((e.params as { pattern: string }).pattern) ?? message
    } else if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperty: string }).additionalProperty
      f = f ? `${f}.${extra}` : extra
      message = 'is not allowed'
    }
    if (seen.has(f)) continue
    seen.add(f)
    out.push({ field: f, message })
    if (out.length >= MAX_DETAILS) break
  }
  return out
}
