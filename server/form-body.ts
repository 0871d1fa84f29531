// application/x-www-form-urlencoded bodies, for the flows that declare they take them (OAuth2 token
// endpoints: RFC 6749 §4.4). Parsed into an object without a prototype, each value a string; a
// parameter given twice is refused (RFC 6749 §3.1), so a body never turns a string field into a list.
// URLSearchParams does the decoding: the WHATWG parser every Node ships, so no dependency is needed.
import { errors } from '../lib/errors.js'

export const FORM_TYPE = 'application/x-www-form-urlencoded'

/** The bodies this parser made, so the flow route can tell a form from JSON without reading headers again. */
const forms = new WeakSet<object>()

export function isFormBody(body: unknown): boolean {
  return typeof body === 'object' && body !== null && forms.has(body)
}

/** A form body as an object of strings; throws VALIDATION_ERROR for a repeated parameter. */
export function parseForm(text: string): Record<string, string> {
  const body: Record<string, string> = Object.create(null) as Record<string, string>
  for (const [key, value] of new URLSearchParams(text)) {
    if (Object.hasOwn(body, key)) throw errors.validation([{ field: key, message: 'must not be repeated' }])
    body[key] = value
  }
  forms.add(body)
  return body
}
