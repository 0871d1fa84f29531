import { Type } from '@sinclair/typebox'
import { eq } from 'drizzle-orm'
import { customers } from '../../db/schema.js'
import { dbCall } from '../../db/errors.js'
import { errors } from '../../lib/errors.js'
import { defineFlow } from '../define.js'
import { accountDeps, isUuid } from './shared.js'

/** The calling customer's own record (identity from the verified token only). */
export const customerMe = defineFlow({
  name: 'customer.me',
  summary: 'The calling customer: {id, email, name, firstName, lastName, createdAt}',
  input: Type.Object({}, { additionalProperties: false }),
  output: Type.Object({
    id: Type.String(),
    email: Type.String(),
    name: Type.Union([Type.String(), Type.Null()]),
    firstName: Type.Union([Type.String(), Type.Null()]),
    lastName: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ description: 'ISO 8601' }),
  }),
  http: { method: 'GET', path: '/customer/me' },
  auth: { roles: ['customer'] },
  async run(_input, ctx) {
    const { db } = accountDeps(ctx)
    const id = ctx.user!.sub
    if (!isUuid(id)) throw errors.notFound('No such customer')
    const customer = await ctx.step('findCustomerById', async () => {
      const rows = await dbCall(() =>
        db
          .select({
            id: customers.id,
            email: customers.email,
            name: customers.name,
            firstName: customers.firstName,
            lastName: customers.lastName,
            createdAt: customers.createdAt,
          })
          .from(customers)
          .where(eq(customers.id, id))
          .limit(1),
      )
      return rows[0]
    })
    if (!customer) throw errors.notFound('No such customer')
    return { ...customer, createdAt: customer.createdAt.toISOString() }
  },
})
