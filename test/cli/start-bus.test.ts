// `flowgate start` with no NATS_URL, as a newcomer runs it: its own nats-server, locked down. A
// client without credentials is refused; the read-only operator key watches events but cannot read
// flow requests (passwords cross the bus in them); the other CLI commands find the bus by themselves;
// and stopping start stops its server.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, nkeyAuthenticator } from 'nats'
import { afterAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { freePort, runCli, tempDir, waitFor, type CliProcess } from '../harness/process.js'

let start: CliProcess | undefined
let db: TestDatabase | undefined
afterAll(async () => {
  start?.child.kill('SIGKILL')
  await db?.drop()
})

describe('flowgate start without NATS_URL', () => {
  it('runs its own locked-down bus that the other commands find, and stops it on SIGTERM', { timeout: 60_000 }, async () => {
    db = await createTestDatabase('startbus')
    const dataDir = tempDir('startbus')
    const port = await freePort()
    const env = { DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', CACHE_PROXY_PORT: String(await freePort()), DATABASE_URL: db.url, LOG_LEVEL: 'warn', LOCAL_NATS_PORT: '0' }
    start = runCli(['start'], env)
    try {
      await waitFor(() => start!.output().includes('Flowgate is up'), 40_000)
      const { url } = JSON.parse(readFileSync(join(dataDir, 'nats', 'bus.json'), 'utf8')) as { url: string }
      expect(start.output()).toContain(`started`)
      expect(start.output()).toMatch(/nats --server nats:\/\/127\.0\.0\.1:\d+ --nkey \S+operator\.nk sub 'gateway\.>'/)

      // Nobody gets on without a key.
      await expect(connect({ servers: url, timeout: 2000 })).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' })

      // The operator watches gateway events but is refused the flow requests.
      const seed = readFileSync(join(dataDir, 'nats', 'keys', 'operator.nk'), 'utf8').trim()
      const operator = await connect({ servers: url, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)) })
      const events: string[] = []
      operator.subscribe('gateway.>', { callback: (_e, m) => events.push(m.subject) })
      let refused = ''
      const spy = operator.subscribe('api.v1.>')
      void (async () => {
        for await (const m of spy) void m
      })().catch((err: { code?: string }) => (refused = err.code ?? 'error'))
      await operator.flush()
      const login = await fetch(`http://127.0.0.1:${port}/api/v1/admin/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'nobody@example.com', password: 'correct horse battery staple' }) })
      expect(login.status).toBe(401)
      await waitFor(() => events.includes('gateway.request.completed') && refused !== '', 10_000)
      expect(refused).toBe('PERMISSIONS_VIOLATION')
      await operator.close()

      // Another command, started apart, finds the bus and its own key in DATA_DIR.
      const blocks = runCli(['blocks', 'list'], env)
      expect(await blocks.exit).toBe(0)
      expect(blocks.output()).toContain('no blocks')

      start.child.kill('SIGTERM')
      expect(await start.exit).toBe(0)
      expect(existsSync(join(dataDir, 'nats', 'bus.json'))).toBe(false)
      await expect(connect({ servers: url, timeout: 1000, reconnect: false })).rejects.toBeDefined()
    } catch (err) {
      throw new Error(`${String(err)}\n--- start output ---\n${start.output()}`)
    }
  })
})
