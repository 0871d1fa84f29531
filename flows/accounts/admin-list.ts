import { Type } from '@sinclair/typebox'
import { asc, count } from 'drizzle-orm'
import { admins } from '../../db/schema.js'
import { dbCall } from '../../db/errors.js'
import { defineFlow } from '../define.js'
import { AdminPage, adminListCache } from './admin-cache.js'
import { accountDeps } from './shared.js'

/** Admins, oldest first, a page at a time. Read through the cache; never selects password hashes. */
export const adminList = defineFlow({
  name: 'admin.list',
  summary: 'Paginated admins: ?page=1..10000&limit=1..100 → {items, total, page, limit}',
  input: Type.Object(
    {
      page: Type.Integer({ minimum: 1, maximum: 10000, default: 1 }),
      limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
    },
    { additionalProperties: false },
  ),
  output: AdminPage,
  http: { method: 'GET', path: '/admin/list' },
  auth: { roles: ['admin'] },
  async run(input, ctx) {
    const { db } = accountDeps(ctx)
    const { page, limit } = input
    const cached = await ctx.step('readCache', () => adminListCache(ctx).read(page, limit))
    if (cached.value) return cached.value
    const [items, [counted]] = await ctx.step('queryAdmins', () =>
      dbCall(() =>
        Promise.all([
          db
            .select({ id: admins.id, email: admins.email, root: admins.root, createdBy: admins.createdBy, createdAt: admins.createdAt })
            .from(admins)
            .orderBy(asc(admins.createdAt), asc(admins.id))
            .limit(limit)
            .offset((page - 1) * limit),
          db.select({ total: count() }).from(admins),
        ]),
      ),
    )
    const result = {
      items: items.map((a) => ({ ...a, createdAt: a.createdAt.toISOString() })),
      total: counted?.total ?? 0,
      page,
      limit,
    }
    await ctx.step('writeCache', () => cached.write(result))
    return result
  },
})
