import { sql } from 'drizzle-orm'
import { customers } from '../../db/schema.js'
import { defineFlow } from '../define.js'
import { Credentials, passwordLogin, TokenOutput } from './shared.js'

/** Email + password of a customer → a customer token. */
export const customerLogin = defineFlow({
  name: 'customer.login',
  summary: 'Customer login: {email, password} → {token, expiresIn}',
  input: Credentials,
  output: TokenOutput,
  http: { method: 'POST', path: '/customer/login' },
  auth: 'public',
  run: (input, ctx) =>
    passwordLogin(
      ctx,
      input,
      {
        step: 'findCustomerByEmail',
        query: (db, email) =>
          db
            .select({ id: customers.id, email: customers.email, passwordHash: customers.passwordHash })
            .from(customers)
            .where(sql`lower(${customers.email}) = ${email}`)
            .limit(1),
      },
      (customer) => ({ sub: customer.id, role: 'customer', email: customer.email }),
    ),
})
