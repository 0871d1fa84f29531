import { Type } from '@sinclair/typebox'
import { customers } from '../../db/schema.js'
import { dbCall } from '../../db/errors.js'
import { defineFlow, ok } from '../define.js'
import { accountDeps, Email, NewPassword, normaliseEmail, StoredText } from './shared.js'

const NamePart = StoredText({ minLength: 1, maxLength: 100 })

/**
 * A new customer account; the same email in any case is a 409. Takes the original nats-flow-gateway
 * shape, `{email, password, firstName, lastName}`, so its clients work unchanged, and `name` as well.
 */
export const customerRegister = defineFlow({
  name: 'customer.register',
  summary: 'Customer sign-up: {email, password, firstName?, lastName?, name?} → 201 {id, email}',
  input: Type.Object(
    {
      email: Email,
      password: NewPassword,
      firstName: Type.Optional(NamePart),
      lastName: Type.Optional(NamePart),
      name: Type.Optional(NamePart),
    },
    { additionalProperties: false },
  ),
  output: Type.Object({ id: Type.String(), email: Type.String() }),
  http: { method: 'POST', path: '/customer/register', status: 201 },
  auth: 'public',
  async run(input, ctx) {
    const { db, passwords } = accountDeps(ctx)
    const email = normaliseEmail(input.email)
    const { firstName = null, lastName = null } = input
    // Without a `name`, the display name is the given parts, so `me` shows one for either shape.
    const name = input.name ?? ([firstName, lastName].filter(Boolean).join(' ') || null)
    const passwordHash = await ctx.step('hashPassword', () => passwords.hash(input.password))
    // No "does it exist?" read first: the unique index decides, so two concurrent sign-ups give one 201 and one 409.
    const [row] = await ctx.step('insertCustomer', () =>
      dbCall(
        () => db.insert(customers).values({ email, passwordHash, name, firstName, lastName }).returning({ id: customers.id }),
        'A customer with this email already exists',
      ),
    )
    return ok({ id: row!.id, email }, 201)
  },
})
