// The seed: a root admin and an API client. Values come from the config; in development, what is
// unset is generated at random and printed once. Never a fixed password. Re-running changes
// nothing: existing rows are left alone (their passwords are not reset).
import { eq, sql } from 'drizzle-orm'
import type { Config } from '../lib/config.js'
import { randomSecret, type PasswordHasher } from '../lib/passwords.js'
import type { Database } from './client.js'
import { admins, apiClients } from './schema.js'

/** Used only in development when ADMIN_EMAIL is unset. */
export const DEV_ADMIN_EMAIL = 'admin@flowgate.local'

export type SeedConfig = Pick<Config, 'nodeEnv' | 'adminEmail' | 'adminPassword' | 'seedClientId' | 'seedClientSecret'>

export interface SeedReport {
  admin: 'created' | 'exists' | 'skipped'
  client: 'created' | 'exists' | 'skipped'
}

export class SeedError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SeedError'
  }
}

/** Seeds the database; `print` receives the lines a person must see (generated credentials, skips). */
export async function seedDatabase(
  db: Database,
  config: SeedConfig,
  passwords: PasswordHasher,
  print: (line: string) => void,
): Promise<SeedReport> {
  return { admin: await seedAdmin(db, config, passwords, print), client: await seedClient(db, config, passwords, print) }
}

async function seedAdmin(db: Database, config: SeedConfig, passwords: PasswordHasher, print: (line: string) => void) {
  const dev = config.nodeEnv !== 'production'
  if (!dev && (!config.adminEmail || !config.adminPassword)) {
    print('seed: ADMIN_EMAIL and ADMIN_PASSWORD are not both set; no root admin created (production never generates one)')
    return 'skipped' as const
  }
  if (config.adminPassword !== undefined && (config.adminPassword.length < 8 || config.adminPassword.length > 256)) {
    throw new SeedError('ADMIN_PASSWORD must be 8 to 256 characters')
  }
  const email = (config.adminEmail ?? DEV_ADMIN_EMAIL).trim().toLowerCase()
  if (!/^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/.test(email)) throw new SeedError(`ADMIN_EMAIL is not an email address: ${email}`)
  // Without ADMIN_EMAIL, any existing root admin means the development seed already ran.
  const columns = { id: admins.id, email: admins.email, passwordHash: admins.passwordHash }
  const existing = config.adminEmail
    ? await db.select(columns).from(admins).where(sql`lower(${admins.email}) = ${email}`).limit(1)
    : await db.select(columns).from(admins).where(eq(admins.root, true)).orderBy(admins.createdAt).limit(1)
  if (existing.length > 0) {
    const notice = await passwordNotice(existing[0]!, config.adminPassword, passwords)
    if (notice !== undefined) print(notice)
    return 'exists' as const
  }
  const password = config.adminPassword ?? randomSecret()
  const inserted = await db
    .insert(admins)
    .values({ email, passwordHash: await passwords.hash(password), root: true })
    .onConflictDoNothing()
    .returning({ id: admins.id })
  if (inserted.length === 0) return 'exists' as const // a concurrent seed won
  print(
    config.adminPassword
      ? `seed: root admin ${email} created (password from ADMIN_PASSWORD)`
      : `seed: root admin ${email} created with password ${password}  (shown once; set ADMIN_EMAIL/ADMIN_PASSWORD to choose)`,
  )
  return 'created' as const
}

/**
 * The seed never changes a stored password; it says so when ADMIN_PASSWORD is not the admin's
 * password, rather than leave the operator guessing why the new one is refused.
 */
async function passwordNotice(
  admin: { email: string; passwordHash: string },
  adminPassword: string | undefined,
  passwords: PasswordHasher,
): Promise<string | undefined> {
  if (adminPassword === undefined || (await passwords.verify(adminPassword, admin.passwordHash))) return undefined
  return (
    `seed: ADMIN_PASSWORD is not the stored password of ${admin.email}; the stored one is kept (the seed never changes a password). ` +
    `To set it: ADMIN_PASSWORD=… flowgate admin reset-password ${admin.email}`
  )
}

/** The notice for a start that does not seed (production): ADMIN_PASSWORD against the stored admin, when both exist. */
export async function checkAdminPassword(db: Database, config: SeedConfig, passwords: PasswordHasher): Promise<string | undefined> {
  if (config.adminPassword === undefined || config.adminEmail === undefined) return undefined
  const email = config.adminEmail.trim().toLowerCase()
  const [admin] = await db.select({ email: admins.email, passwordHash: admins.passwordHash }).from(admins).where(sql`lower(${admins.email}) = ${email}`).limit(1)
  return admin === undefined ? undefined : passwordNotice(admin, config.adminPassword, passwords)
}

/**
 * Sets a new password for an admin (`flowgate admin reset-password`): the way back from a lost one.
 * Tokens already issued stay valid until they expire (JWT_TTL_SEC).
 */
export async function resetAdminPassword(db: Database, email: string, password: string, passwords: PasswordHasher): Promise<boolean> {
  if (password.length < 8 || password.length > 256) throw new SeedError('the new password must be 8 to 256 characters')
  const normalised = email.trim().toLowerCase()
  const updated = await db
    .update(admins)
    .set({ passwordHash: await passwords.hash(password) })
    .where(sql`lower(${admins.email}) = ${normalised}`)
    .returning({ id: admins.id })
  return updated.length > 0
}

async function seedClient(db: Database, config: SeedConfig, passwords: PasswordHasher, print: (line: string) => void) {
  const dev = config.nodeEnv !== 'production'
  if (!dev && !config.seedClientSecret) return 'skipped' as const
  if (config.seedClientSecret !== undefined && (config.seedClientSecret.length < 16 || config.seedClientSecret.length > 256)) {
    throw new SeedError('SEED_CLIENT_SECRET must be 16 to 256 characters')
  }
  const clientId = config.seedClientId
  const existing = await db.select({ id: apiClients.id }).from(apiClients).where(eq(apiClients.clientId, clientId)).limit(1)
  if (existing.length > 0) return 'exists' as const
  const secret = config.seedClientSecret ?? randomSecret()
  const inserted = await db
    .insert(apiClients)
    .values({ clientId, name: 'seeded API client', secretHash: await passwords.hash(secret), scopes: ['api'] })
    .onConflictDoNothing()
    .returning({ id: apiClients.id })
  if (inserted.length === 0) return 'exists' as const
  print(
    config.seedClientSecret
      ? `seed: API client ${clientId} created (secret from SEED_CLIENT_SECRET)`
      : `seed: API client ${clientId} created with secret ${secret}  (shown once; set SEED_CLIENT_ID/SEED_CLIENT_SECRET to choose)`,
  )
  return 'created' as const
}
