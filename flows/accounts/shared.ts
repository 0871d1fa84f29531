// What the account flows share: input schemas (strict and bounded, since flows also take raw bus
// messages), email normalisation, and the dependencies they need from the worker.
import { Type } from '@sinclair/typebox'
import type { Database } from '../../db/client.js'
import type { Principal, TokenService } from '../../lib/auth.js'
import { dbCall } from '../../db/errors.js'
import { errors } from '../../lib/errors.js'
import type { PasswordHasher } from '../../lib/passwords.js'
import { STORABLE_TEXT } from '../../lib/validation.js'
import type { FlowContext } from '../context.js'

// A pattern rather than `format: 'email'`: both checkers (TypeBox here, Ajv at the edge) apply it the
// same way without format plugins. Surrounding spaces are allowed because the email is trimmed.
// NUL is excluded too: the database cannot hold it (see STORABLE_TEXT).
export const Email = Type.String({
  minLength: 3,
  maxLength: 320,
  pattern: '^\\s*[^\\s@\\u0000]{1,64}@[^\\s@\\u0000]+\\.[^\\s@\\u0000]+\\s*$',
  description: 'email address; trimmed and lower-cased',
})

/** A string stored or looked up in the database: no NUL, which PostgreSQL text cannot hold (VALIDATION_ERROR, not a 500). */
export const StoredText = (opts: { minLength?: number; maxLength: number; description?: string }) => Type.String({ ...opts, pattern: STORABLE_TEXT })

/** A password being set: 8 to 256 characters. */
export const NewPassword = Type.String({ minLength: 8, maxLength: 256 })
/** A password being checked: bounded so nobody makes us hash megabytes. */
export const LoginPassword = Type.String({ minLength: 1, maxLength: 256 })

export const Credentials = Type.Object({ email: Email, password: LoginPassword }, { additionalProperties: false })

export const TokenOutput = Type.Object({
  token: Type.String(),
  expiresIn: Type.Integer({ description: 'seconds' }),
})

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase()
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isUuid = (s: string) => UUID.test(s)

export interface AccountDeps {
  db: Database
  tokens: TokenService
  passwords: PasswordHasher
}

/** The worker's database, token service and hasher; 503 in a process started without them. */
export function accountDeps(ctx: FlowContext): AccountDeps {
  const { db, tokens, passwords } = ctx.deps
  if (!db || !tokens || !passwords) throw errors.serviceUnavailable('Accounts are not configured on this worker')
  return { db, tokens, passwords }
}

export const INVALID_LOGIN = 'Invalid email or password'

/**
 * Checks a password against a found row, or against the dummy hash when there is none, so that an
 * unknown email and a wrong password take the same time and give the same answer.
 */
export async function checkPassword(passwords: PasswordHasher, password: string, stored: string | undefined): Promise<void> {
  const valid = stored === undefined ? await passwords.verifyDummy(password) : await passwords.verify(password, stored)
  if (!valid) throw errors.unauthorized(INVALID_LOGIN)
}

/**
 * The login of admins and customers: find the account by normalised email, check the password (or
 * the dummy hash), sign a token. Only the lookup and the claims differ.
 */
export async function passwordLogin<Row extends { passwordHash: string }>(
  ctx: FlowContext,
  input: { email: string; password: string },
  find: { step: string; query: (db: Database, email: string) => Promise<Row[]> },
  claims: (row: Row) => Principal,
): Promise<{ token: string; expiresIn: number }> {
  const { db, tokens, passwords } = accountDeps(ctx)
  const email = normaliseEmail(input.email)
  const row = await ctx.step(find.step, async () => (await dbCall(() => find.query(db, email)))[0])
  await ctx.step('verifyPassword', () => checkPassword(passwords, input.password, row?.passwordHash))
  return ctx.step('signToken', () => tokens.sign(claims(row!)))
}
