import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cancelEarlyOpens, DatabaseLockedError, openEmbeddedDatabase, type EmbeddedDatabase } from './pglite-client.js'

const dir = mkdtempSync(join(tmpdir(), 'flowgate-pglite-thread-'))
let db: EmbeddedDatabase | undefined

afterAll(async () => {
  await db?.close()
})

describe('the embedded database on its own thread', { timeout: 120_000 }, () => {
  it('answers queries, keeps the SQLSTATE of a failure, and holds the data dir against a second opener', async () => {
    db = await openEmbeddedDatabase(dir)
    await db.query('create table t (id int primary key, at timestamptz)')
    expect((await db.query('insert into t values ($1, $2)', [1, '2026-01-02T03:04:05Z'])).affectedRows).toBe(1)
    // Drizzle asks for dates as text: the types it names keep their text across the thread.
    const asText = await db.query('select id, at from t', [], { rowMode: 'array', parsers: { 1184: (v: string) => v } })
    expect(asText.rows).toEqual([[1, '2026-01-02 03:04:05+00']])
    const parsed = await db.query('select at from t')
    expect((parsed.rows[0] as { at: unknown }).at).toBeInstanceOf(Date)
    const dup = await db.query('insert into t values (1, null)').catch((e: unknown) => e)
    expect(dup).toBeInstanceOf(Error)
    expect(dup).toMatchObject({ code: '23505', constraint: 't_pkey' })
    await expect(openEmbeddedDatabase(dir)).rejects.toBeInstanceOf(DatabaseLockedError)
  })

  it('runs a transaction alone: a query sent meanwhile waits for the commit, a failure rolls back', async () => {
    const order: string[] = []
    let outside: Promise<unknown> | undefined
    await db!.transaction(async (tx) => {
      await tx.query('insert into t values (2, null)')
      outside = db!.query('select count(*)::int as n from t').then((r) => order.push(`outside sees ${(r.rows[0] as { n: number }).n}`))
      await new Promise((r) => setTimeout(r, 50))
      await tx.query('insert into t values (3, null)')
      order.push('commit')
    })
    await outside
    expect(order).toEqual(['commit', 'outside sees 3'])
    await expect(
      db!.transaction(async (tx) => {
        await tx.query('insert into t values (4, null)')
        throw new Error('changed my mind')
      }),
    ).rejects.toThrow('changed my mind')
    expect((await db!.query('select count(*)::int as n from t')).rows).toEqual([{ n: 3 }])
  })

  it('lets go of the data dir on close, and an early open nobody took is cancelled', async () => {
    await db!.close()
    db = undefined
    expect(existsSync(join(dir, 'pglite.pid'))).toBe(false)
    void openEmbeddedDatabase(dir, { early: true })
    expect(existsSync(join(dir, 'pglite.pid'))).toBe(true)
    await cancelEarlyOpens()
    expect(existsSync(join(dir, 'pglite.pid'))).toBe(false)
    db = await openEmbeddedDatabase(dir)
    expect((await db.query('select count(*)::int as n from t')).rows).toEqual([{ n: 3 }])
  })
})
