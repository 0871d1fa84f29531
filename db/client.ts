// Opens the database: PostgreSQL through a pg pool when DATABASE_URL is set, otherwise an embedded
// PostgreSQL (PGlite) under DATA_DIR. Both give the same Drizzle database type, so flows never know.
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PGlite } from '@electric-sql/pglite'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { sql } from 'drizzle-orm'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { openEmbeddedDatabase } from './pglite-client.js'
import { schema } from './schema.js'

export { DatabaseLockedError } from './pglite-client.js'

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>

export interface DatabaseHandle {
  readonly db: Database
  readonly kind: 'postgres' | 'pglite'
  /** Rejects when the database does not answer (the healthcheck probe). */
  probe(): Promise<void>
  /** Applies pending migrations (serialised across processes on PostgreSQL). */
  migrate(): Promise<void>
  close(): Promise<void>
}

export type DatabaseConfig = Pick<Config, 'databaseUrl' | 'dataDir' | 'dbPoolMax' | 'dbStatementTimeoutMs' | 'dbConnectTimeoutMs'>

/** Where the committed drizzle-kit migrations are, from source (db/) or from the build (dist/db/). */
export function migrationsFolder(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  for (const candidate of [join(here, 'migrations'), join(here, '..', '..', 'db', 'migrations')]) {
    if (existsSync(join(candidate, 'meta', '_journal.json'))) return candidate
  }
  throw new Error(`db/migrations not found next to ${here}`)
}

/** Connects (PostgreSQL or embedded), without migrating. */
export async function openDatabase(config: DatabaseConfig, log: Logger): Promise<DatabaseHandle> {
  return config.databaseUrl ? openPostgres(config, config.databaseUrl, log) : openPglite(config, log)
}

async function openPostgres(config: DatabaseConfig, url: string, log: Logger): Promise<DatabaseHandle> {
  const { default: pg } = await import('pg')
  const { drizzle } = await import('drizzle-orm/node-postgres')
  const { migrate } = await import('drizzle-orm/node-postgres/migrator')
  const pool = new pg.Pool({
    connectionString: url,
    max: config.dbPoolMax,
    // A stopped database must turn into a quick 503, not a request that hangs until its deadline.
    connectionTimeoutMillis: config.dbConnectTimeoutMs,
    statement_timeout: config.dbStatementTimeoutMs,
    query_timeout: config.dbStatementTimeoutMs + 1000,
    idleTimeoutMillis: 30_000,
    application_name: 'flowgate',
  })
  // An idle client whose server went away emits here; without a listener the process would crash.
  pool.on('error', (err) => log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'database connection lost'))
  const db = drizzle({ client: pool, schema }) as unknown as Database
  return {
    db,
    kind: 'postgres',
    async probe() {
      await pool.query('select 1')
    },
    async migrate() {
      const client = await pool.connect()
      try {
        // Several workers may start at once; one applies the migrations, the others wait and find none.
        await client.query("select pg_advisory_lock(hashtext('flowgate.migrate'))")
        try {
          await migrate(drizzle({ client, schema }), { migrationsFolder: migrationsFolder() })
        } finally {
          await client.query("select pg_advisory_unlock(hashtext('flowgate.migrate'))")
        }
      } finally {
        client.release()
      }
    },
    close: () => pool.end(),
  }
}

async function openPglite(config: DatabaseConfig, log: Logger): Promise<DatabaseHandle> {
  const { drizzle } = await import('drizzle-orm/pglite')
  const { migrate } = await import('drizzle-orm/pglite/migrator')
  const client = await openEmbeddedDatabase(config.dataDir)
  log.info({ dataDir: join(config.dataDir, 'pglite') }, 'using the embedded database (PGlite); set DATABASE_URL to use PostgreSQL')
  // The thread's client has the part of PGlite's interface the driver uses (db/pglite-client.ts).
  const db = drizzle({ client: client as unknown as PGlite, schema })
  return {
    db: db as unknown as Database,
    kind: 'pglite',
    async probe() {
      await db.execute(sql`select 1`)
    },
    migrate: () => migrate(db, { migrationsFolder: migrationsFolder() }),
    close: () => client.close(),
  }
}
