import { Type } from '@sinclair/typebox'
import { admins } from '../../db/schema.js'
import { dbCall } from '../../db/errors.js'
import { defineFlow, ok, type FlowSpec } from '../define.js'
import { adminListCache } from './admin-cache.js'
import { accountDeps, Email, isUuid, NewPassword, normaliseEmail } from './shared.js'

const input = Type.Object({ email: Email, password: NewPassword, root: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
const output = Type.Object({ id: Type.String() })

const spec: FlowSpec<typeof input, typeof output> = {
  name: 'admin.create',
  summary: 'New admin (root admins only): {email, password, root?} → 201 {id}',
  input,
  output,
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
}

/** A new admin, created by a root admin (recorded as created_by); invalidates the cached list. */
export const adminCreate = defineFlow(spec)

/** The same flow at the original nats-flow-gateway path, so its clients work unchanged. */
export const adminCreateAdmin = defineFlow({
  ...spec,
  name: 'admin.create_admin',
  summary: 'New admin (root admins only), at the original path: the same as POST /api/v1/admin/create',
  http: { method: 'POST', path: '/admin/create-admin', status: 201 },
})
