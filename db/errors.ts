// Database failures as catalog errors. Decided on SQLSTATE codes and the driver's error codes,
// never on message text: a unique violation is CONFLICT; text it cannot store is VALIDATION_ERROR;
// a database that cannot be reached (or is shutting down, or overloaded) is SERVICE_UNAVAILABLE;
// anything else is INTERNAL_ERROR (masked).
import { errors, FlowgateError } from '../lib/errors.js'

const SQLSTATE = /^[0-9A-Z]{5}$/
// Classes 08 (connection exception), 53 (insufficient resources), 57 (operator intervention:
// admin shutdown, cannot connect now, statement timeout 57014).
const UNAVAILABLE_CLASSES = new Set(['08', '53', '57'])
// A value the database cannot store (a NUL in text: 22021; a character the encoding lacks: 22P05) came
// from the caller: a VALIDATION_ERROR, not a 500. The flows' schemas catch these first, with the field.
const UNSTORABLE = new Set(['22021', '22P05'])

/** The SQLSTATE of a database error (looking through Drizzle's wrapper), if it has one. */
export function sqlState(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && SQLSTATE.test(code)) return code
  }
  return undefined
}

export function isUniqueViolation(err: unknown): boolean {
  return sqlState(err) === '23505'
}

/**
 * Maps a thrown database error. Errors with no SQLSTATE (other than programming errors) come from the
 * connection (refused, reset, terminated, pool wait timed out): the database is unavailable.
 */
export function databaseError(err: unknown, conflictMessage = 'Already exists'): FlowgateError {
  if (err instanceof FlowgateError) return err
  const state = sqlState(err)
  if (state === '23505') return errors.conflict(conflictMessage)
  if (state !== undefined && UNSTORABLE.has(state)) {
    return new FlowgateError('VALIDATION_ERROR', 'Input contains characters the database cannot store (such as U+0000)', { stack: false })
  }
  if (state === undefined ? !isProgrammingError(innermost(err)) : UNAVAILABLE_CLASSES.has(state.slice(0, 2))) {
    return errors.serviceUnavailable('Database unavailable')
  }
  // The cause kept for the log is the driver's error, not Drizzle's wrapper (whose message lists the
  // query parameters, password hashes included).
  return errors.internal('Database error', { cause: innermost(err) })
}

// A bug in our own code (or in a query builder) is not an outage.
const isProgrammingError = (e: unknown) => e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError

function innermost(err: unknown): unknown {
  let e = err
  for (let depth = 0; depth < 5 && (e as { cause?: unknown })?.cause; depth++) e = (e as { cause: unknown }).cause
  return e
}

/** Runs a database call, mapping its failure. */
export async function dbCall<T>(fn: () => Promise<T>, conflictMessage?: string): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw databaseError(err, conflictMessage)
  }
}
