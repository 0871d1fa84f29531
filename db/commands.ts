// `flowgate db migrate`, `flowgate db seed` and `flowgate admin reset-password`: open, act, close.
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { createPasswordHasher, randomSecret } from '../lib/passwords.js'
import { DatabaseLockedError, openDatabase } from './client.js'
import { resetAdminPassword, SeedError, seedDatabase } from './seed.js'

export const DB_COMMANDS = ['migrate', 'seed'] as const
export type DbCommand = (typeof DB_COMMANDS)[number]

export function isDbCommand(name: string | undefined): name is DbCommand {
  return (DB_COMMANDS as readonly string[]).includes(name ?? '')
}

/** Failures to show as a plain message (no stack): a locked embedded database, bad seed settings. */
export function isDbUsageError(err: unknown): err is Error {
  return err instanceof DatabaseLockedError || err instanceof SeedError
}

/** Runs one db subcommand; `seed` migrates first, so it works on an empty database. */
export async function runDbCommand(command: DbCommand, config: Config, log: Logger, print: (line: string) => void): Promise<void> {
  const handle = await openDatabase(config, log)
  try {
    await handle.migrate()
    if (command === 'migrate') {
      print(`db: migrations applied (${handle.kind})`)
      return
    }
    const report = await seedDatabase(handle.db, config, createPasswordHasher(), print)
    print(`db: seed done (admin ${report.admin}, client ${report.client})`)
  } finally {
    await handle.close()
  }
}

/**
 * Sets a new password for the admin with this email: ADMIN_PASSWORD when set, otherwise a random one
 * printed once. Resolves with the exit code (1: no such admin).
 */
export async function runResetPassword(email: string, config: Config, log: Logger, print: (line: string) => void): Promise<number> {
  const handle = await openDatabase(config, log)
  try {
    await handle.migrate()
    const password = config.adminPassword ?? randomSecret()
    if (!(await resetAdminPassword(handle.db, email, password, createPasswordHasher()))) {
      print(`no admin with the email ${email.trim().toLowerCase()}`)
      return 1
    }
    print(
      config.adminPassword
        ? `admin ${email.trim().toLowerCase()}: password set from ADMIN_PASSWORD`
        : `admin ${email.trim().toLowerCase()}: new password ${password}  (shown once)`,
    )
    print('tokens issued before stay valid until they expire (JWT_TTL_SEC)')
    return 0
  } finally {
    await handle.close()
  }
}
