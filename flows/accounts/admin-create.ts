import { Type } from '@sinclair/typebox'
import { admins } from '../../db/schema.js'
import { dbCall } from '../../db/errors.js'
import { defineFlow, ok } from '../define.js'
import { adminListCache } from './admin-cache.js'
import { accountDeps, Email, isUuid, NewPassword, normaliseEmail } from './shared.js'

/** A new admin, created by a root admin (recorded as created_by); invalidates the cached list. */
export const adminCreate = defineFlow({
  name: 'admin.create',
  summary: 'New admin (root admins only): {email, password, root?} → 201 {id}',
  input: Type.Object({ email: Email, password: NewPassword, root: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  output: Type.Object({ id: Type.String() }),
  http: { method: 'POST', path: '/admin/create', status: 201 },
  auth: { roles: ['root'] },
  async run(input, ctx) {
    const { db, passwords } = accountDeps(ctx)
    const email = normaliseEmail(input.email)
    const passwordHash = await ctx.step('hashPassword', () => passwords.hash(input.password))
    const [row] = await ctx.step('insertAdmin', () =>
      dbCall(
        () =>
          db
            .insert(admins)
            .values({ email, passwordHash, root: input.root ?? false, createdBy: isUuid(ctx.user!.sub) ? ctx.user!.sub : null })
            .returning({ id: admins.id }),
        'An admin with this email already exists',
      ),
    )
    await ctx.step('invalidateAdminList', () => adminListCache(ctx).invalidate())
    return ok({ id: row!.id }, 201)
  },
})
