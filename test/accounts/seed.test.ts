// The seed: from ADMIN_EMAIL/ADMIN_PASSWORD, or random and printed once in development; never a
// fixed password; nothing generated in production; re-running changes nothing.
import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { admins, apiClients } from '../../db/schema.js'
import { checkAdminPassword, DEV_ADMIN_EMAIL, resetAdminPassword, SeedError, seedDatabase, type SeedConfig } from '../../db/seed.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { testHasher } from './stack.js'

let t: TestDatabase
const hasher = testHasher()

beforeAll(async () => {
  t = await createTestDatabase('seed')
})
afterAll(() => t?.drop())
beforeEach(async () => {
  await t.handle.db.delete(admins)
  await t.handle.db.delete(apiClients)
})

const base: SeedConfig = { nodeEnv: 'development', adminEmail: undefined, adminPassword: undefined, seedClientId: 'flowgate-dev', seedClientSecret: undefined }

async function seed(config: Partial<SeedConfig>) {
  const lines: string[] = []
  const report = await seedDatabase(t.handle.db, { ...base, ...config }, hasher, (l) => lines.push(l))
  return { report, lines }
}

describe('seed', () => {
  it('in development without settings: a random root password and client secret, printed once', async () => {
    const first = await seed({})
    expect(first.report).toEqual({ admin: 'created', client: 'created' })
    const password = /with password (\S+)/.exec(first.lines.join('\n'))?.[1]
    const secret = /with secret (\S+)/.exec(first.lines.join('\n'))?.[1]
    expect(password).toHaveLength(32)
    expect(secret).toHaveLength(32)
    const [row] = await t.handle.db.select().from(admins).where(eq(admins.email, DEV_ADMIN_EMAIL))
    expect(row).toMatchObject({ root: true })
    expect(await hasher.verify(password!, row!.passwordHash)).toBe(true)
    const [client] = await t.handle.db.select().from(apiClients)
    expect(await hasher.verify(secret!, client!.secretHash)).toBe(true)

    const again = await seed({})
    expect(again.report).toEqual({ admin: 'exists', client: 'exists' })
    expect(again.lines).toEqual([])
    // Another run generates another password: it is random, not a fixed demo one.
    await t.handle.db.delete(admins)
    const third = await seed({})
    expect(/with password (\S+)/.exec(third.lines.join('\n'))?.[1]).not.toBe(password)
  })

  it('from ADMIN_EMAIL/ADMIN_PASSWORD; re-running (even with another password) changes nothing', async () => {
    const first = await seed({ adminEmail: ' Boss@Example.com ', adminPassword: 'boss-password-1', seedClientSecret: 'a-client-secret-0123456789' })
    expect(first.report).toEqual({ admin: 'created', client: 'created' })
    expect(first.lines.join('\n')).not.toContain('boss-password-1')
    const before = await t.handle.db.select().from(admins)
    expect(before).toHaveLength(1)
    expect(before[0]!.email).toBe('boss@example.com')
    const again = await seed({ adminEmail: 'BOSS@example.com', adminPassword: 'another-password' })
    expect(again.report.admin).toBe('exists')
    expect(await t.handle.db.select().from(admins)).toEqual(before)
  })

  it('in production: nothing generated; missing settings skip the admin and the client', async () => {
    const r = await seed({ nodeEnv: 'production' })
    expect(r.report).toEqual({ admin: 'skipped', client: 'skipped' })
    expect(await t.handle.db.select().from(admins)).toEqual([])
    expect(await t.handle.db.select().from(apiClients)).toEqual([])
    const withSettings = await seed({ nodeEnv: 'production', adminEmail: 'ops@example.com', adminPassword: 'ops-password-1' })
    expect(withSettings.report).toEqual({ admin: 'created', client: 'skipped' })
  })

  it('refuses a too-short ADMIN_PASSWORD or a malformed ADMIN_EMAIL', async () => {
    await expect(seed({ adminEmail: 'a@example.com', adminPassword: 'short' })).rejects.toBeInstanceOf(SeedError)
    await expect(seed({ adminEmail: 'not-an-email', adminPassword: 'long-enough-1' })).rejects.toBeInstanceOf(SeedError)
  })

  it('production: a start that does not seed still says when ADMIN_PASSWORD is not the stored one; a reset makes it so', async () => {
    const prod = { ...base, nodeEnv: 'production' as const, adminEmail: 'Ops@Example.com', adminPassword: 'first-password-1' }
    await seed(prod)
    expect(await checkAdminPassword(t.handle.db, prod, hasher)).toBeUndefined()
    const changed = { ...prod, adminPassword: 'second-password-2' }
    expect(await checkAdminPassword(t.handle.db, changed, hasher)).toMatch(/^seed: ADMIN_PASSWORD is not the stored password of ops@example\.com.*flowgate admin reset-password ops@example\.com$/)
    expect(await checkAdminPassword(t.handle.db, { ...changed, adminEmail: 'nobody@example.com' }, hasher)).toBeUndefined()
    expect(await resetAdminPassword(t.handle.db, ' OPS@example.com ', 'second-password-2', hasher)).toBe(true)
    expect(await checkAdminPassword(t.handle.db, changed, hasher)).toBeUndefined()
    expect(await resetAdminPassword(t.handle.db, 'nobody@example.com', 'second-password-2', hasher)).toBe(false)
    await expect(resetAdminPassword(t.handle.db, 'ops@example.com', 'short', hasher)).rejects.toThrow(SeedError)
  })
})
