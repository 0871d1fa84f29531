import { sql } from 'drizzle-orm'
import { admins } from '../../db/schema.js'
import { defineFlow } from '../define.js'
import { Credentials, passwordLogin, TokenOutput } from './shared.js'

/** Email + password of an admin → an admin token (root admins' tokens say so). */
export const adminLogin = defineFlow({
  name: 'admin.login',
  summary: 'Admin login: {email, password} → {token, expiresIn}',
  input: Credentials,
  output: TokenOutput,
  http: { method: 'POST', path: '/admin/login' },
  auth: 'public',
  run: (input, ctx) =>
    passwordLogin(
      ctx,
      input,
      {
        step: 'findAdminByEmail',
        query: (db, email) =>
          db
            .select({ id: admins.id, email: admins.email, root: admins.root, passwordHash: admins.passwordHash })
            .from(admins)
            .where(sql`lower(${admins.email}) = ${email}`)
            .limit(1),
      },
      (admin) => ({ sub: admin.id, role: 'admin', root: admin.root, email: admin.email }),
    ),
})
