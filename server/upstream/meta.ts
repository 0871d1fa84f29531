// The optional `_meta` wrapping of a route's JSON answers (off by default): the upstream's JSON
// object with `_meta` added; anything else passes as it came.

/** JSON answers wrapped with `_meta` are buffered up to this size; larger ones pass unwrapped. */
export const META_MAX_BYTES = 1024 * 1024

export function isJson(type: string | string[] | undefined): boolean {
  return typeof type === 'string' && /^application\/(?:[\w.+-]+\+)?json\b/i.test(type)
}

/** A JSON object answer with `_meta` added; undefined when the body is not a JSON object. */
export function withMeta(body: Buffer, meta: Record<string, unknown>): Buffer | undefined {
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  return Buffer.from(JSON.stringify({ ...(value as Record<string, unknown>), _meta: meta }))
}

