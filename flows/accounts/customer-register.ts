import { Type } from '@sinclair/typebox'
import { customers } from '../../db/schema.js'
import { dbCall } from '../../db/errors.js'
import { defineFlow, ok } from '../define.js'
import { accountDeps, Email, NewPassword, normaliseEmail, StoredText } from './shared.js'

/** A new customer account; the same email in any case is a 409. */
export const customerRegister = defineFlow({
  name: 'customer.register',
  summary: 'Customer sign-up: {email, password, name?} → 201 {id, email}',
  input: Type.Object(
    { email: Email, password: NewPassword, name: Type.Optional(StoredText({ minLength: 1, maxLength: 100 })) },
    { additionalProperties: false },
  ),
  output: Type.Object({ id: Type.String(), email: Type.String() }),
  http: { method: 'POST', path: '/customer/register', status: 201 },
  auth: 'public',
  async run(input, ctx) {
    const { db, passwords } = accountDeps(ctx)
    const email = normaliseEmail(input.email)
    const passwordHash = await ctx.step('hashPassword', () => passwords.hash(input.password))
    // No "does it exist?" read first: the unique index decides, so two concurrent sign-ups give one 201 and one 409.
    const [row] = await ctx.step('insertCustomer', () =>
      dbCall(
        () => db.insert(customers).values({ email, passwordHash, name: input.name ?? null }).returning({ id: customers.id }),
        'A customer with this email already exists',
      ),
    )
    return ok({ id: row!.id, email }, 201)
  },
})
