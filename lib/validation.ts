// Schema failures as the envelope's `detailed` list: a field path (dots, `items.0.sku`) and a message.
// Both checkers end here: TypeBox's compiled checks in flows and Ajv at the edge (where schemas
// arrive as plain JSON Schema through discovery).
import type { ValueErrorIterator } from '@sinclair/typebox/errors'
import type { ErrorObject } from 'ajv'
import type { FieldError } from './errors.js'

const MAX_DETAILS = 20

const field = (pointer: string) => pointer.replace(/^\//, '').replaceAll('/', '.').replaceAll('~1', '/').replaceAll('~0', '~')

export function typeboxFieldErrors(iterator: ValueErrorIterator): FieldError[] {
  const out: FieldError[] = []
  const seen = new Set<string>()
  for (const e of iterator) {
    const f = field(e.path)
    // TypeBox reports every union branch; the first message per field is the useful one.
    if (seen.has(f)) continue
    seen.add(f)
    out.push({ field: f, message: e.message })
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
