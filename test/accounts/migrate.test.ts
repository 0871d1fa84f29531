// Migrations: the committed drizzle-kit migrations apply to an empty database, concurrently started
// workers do not trip over each other (advisory lock), and re-applying is a no-op. Also the CLI's
// `db migrate` / `db seed` path (runDbCommand) against PostgreSQL.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { migrationsFolder, openDatabase } from '../../db/client.js'
import { runDbCommand } from '../../db/commands.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'

let t: TestDatabase
// Both drivers return `{ rows }` from execute(); the shared Database type leaves the result unknown.
type Rows = { rows: Array<Record<string, unknown>> }
const log = createLogger({ logLevel: 'silent' })

beforeAll(async () => {
  t = await createTestDatabase('migrate', { migrate: false })
})
afterAll(() => t?.drop())

it('every committed SQL file is in the drizzle-kit journal', () => {
  const folder = migrationsFolder()
  const journal = JSON.parse(readFileSync(join(folder, 'meta', '_journal.json'), 'utf8')) as { entries: Array<{ tag: string }> }
  const files = readdirSync(folder).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, ''))
  expect(journal.entries.map((e) => e.tag).sort()).toEqual(files.sort())
})

it('three workers migrating one empty database at once: all succeed, applied once', async () => {
  const config = parseConfig({ databaseUrl: t.url })
  const handles = await Promise.all([1, 2, 3].map(() => openDatabase(config, log)))
  try {
    await Promise.all(handles.map((h) => h.migrate()))
    await handles[0]!.migrate()
    const applied = (await t.handle.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`)) as unknown as Rows
    expect(applied.rows[0]).toEqual({ n: readdirSync(migrationsFolder()).filter((f) => f.endsWith('.sql')).length })
    const tables = (await t.handle.db.execute(sql`select table_name from information_schema.tables where table_schema = 'public' order by 1`)) as unknown as Rows
    expect(tables.rows.map((r) => r.table_name)).toEqual(['admins', 'api_clients', 'customers'])
  } finally {
    await Promise.all(handles.map((h) => h.close()))
  }
})

it('`db migrate` and `db seed` (what npm run db:migrate / db:seed run)', async () => {
  const config = parseConfig({ databaseUrl: t.url, nodeEnv: 'test', adminEmail: 'cli@example.com', adminPassword: 'cli-password-1', logLevel: 'silent' })
  const lines: string[] = []
  await runDbCommand('migrate', config, log, (l) => lines.push(l))
  await runDbCommand('seed', config, log, (l) => lines.push(l))
  await runDbCommand('seed', config, log, (l) => lines.push(l))
  expect(lines[0]).toBe('db: migrations applied (postgres)')
  expect(lines.filter((l) => l.includes('root admin cli@example.com created'))).toHaveLength(1)
  expect(lines.at(-1)).toBe('db: seed done (admin exists, client exists)')
})
