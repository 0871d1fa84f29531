// Safe defaults as a new user meets them through the built CLI: the secret is generated per data
// directory and the gateway listens on loopback; the public secret kept on purpose is warned about
// once, in words; tool commands print no secret warning; `config` shows the values in effect with
// secrets masked; a port in use is one line; a lost admin password has a way back.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNats, type NatsServer } from '../harness/nats.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { CLI, freePort, runCli, tempDir, waitFor } from '../harness/process.js'

const PUBLIC_SECRET = 'flowgate-development-secret-do-not-use'

let nats: NatsServer

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  nats = await startNats()
})
afterAll(async () => {
  await nats?.stop()
})

/** The built CLI with stdout and stderr kept apart. */
function runSplit(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const out = { stdout: '', stderr: '' }
  child.stdout.on('data', (b: Buffer) => (out.stdout += b.toString()))
  child.stderr.on('data', (b: Buffer) => (out.stderr += b.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, out, exit }
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '')
const isJson = (line: string) => {
  try {
    return typeof JSON.parse(line) === 'object'
  } catch {
    return false
  }
}

async function run(args: string[], env: Record<string, string>, timeoutMs = 60_000) {
  const p = runSplit(args, env)
  const code = await Promise.race([p.exit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), timeoutMs))])
  if (code === 'hung') p.child.kill('SIGKILL')
  return { code, ...p.out }
}

describe('the secret and the address', () => {
  it('a development gateway generates its secret in DATA_DIR, listens on 127.0.0.1 and warns about nothing', async () => {
    const dataDir = tempDir('cli-secret')
    const port = await freePort()
    const p = runSplit(['gateway'], { NATS_URL: nats.url, PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn' })
    try {
      await waitFor(() => p.out.stderr.includes('Flowgate is up'), 20_000)
      expect(p.out.stderr).toContain(`gateway: http://127.0.0.1:${port}`)
      expect(p.out.stderr).not.toMatch(/JWT_SECRET/)
      expect(p.out.stdout).not.toMatch(/JWT_SECRET/)
      expect(readFileSync(join(dataDir, 'jwt-secret'), 'utf8').trim()).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200)
    } finally {
      p.child.kill('SIGTERM')
      await p.exit
    }
  })

  it('the public secret kept on purpose is one warning in words on stderr; stdout holds only JSON log lines', async () => {
    const port = await freePort()
    const p = runSplit(['gateway'], { NATS_URL: nats.url, PORT: String(port), HOST: '0.0.0.0', DATA_DIR: tempDir('cli-public'), JWT_SECRET: PUBLIC_SECRET })
    try {
      await waitFor(() => p.out.stderr.includes('Flowgate is up'), 20_000)
      await fetch(`http://127.0.0.1:${port}/health`)
      await waitFor(() => p.out.stdout.includes('request completed'), 5000)
      const warnings = lines(p.out.stderr).filter((l) => l.includes('JWT_SECRET'))
      expect(warnings).toEqual([expect.stringMatching(/^warning: JWT_SECRET is set to the public development default, so anyone who can reach the gateway on the network \(HOST=0\.0\.0\.0\) can sign their own admin token/)])
      expect(lines(p.out.stdout).every(isJson)).toBe(true)
      expect(lines(p.out.stderr).some(isJson)).toBe(false)
    } finally {
      p.child.kill('SIGTERM')
      await p.exit
    }
  })

  it('tool commands print no secret warning, as JSON or otherwise', async () => {
    const env = { NATS_URL: nats.url, JWT_SECRET: PUBLIC_SECRET, DATA_DIR: tempDir('cli-tools') }
    for (const args of [['config'], ['help'], ['blocks', 'list'], ['events', 'tail', 'no.such.kind']]) {
      const r = await run(args, env)
      expect(`${r.stdout}${r.stderr}`, args.join(' ')).not.toMatch(/warning|"level":40|public development default/)
    }
  })

  it('`config` shows the values in effect and where they came from, secrets masked', async () => {
    const r = await run(['config'], {
      NODE_ENV: 'test',
      PORT: '4321',
      JWT_SECRET: 'a-very-private-secret-of-enough-length',
      DATABASE_URL: 'postgres://app:dbpassword@db:5432/flowgate',
      ADMIN_PASSWORD: 'admin-password-1',
    })
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^PORT\s+4321\s+environment\s+gateway HTTP port/m)
    expect(r.stdout).toMatch(/^HOST\s+127\.0\.0\.1\s+default\s+/m)
    expect(r.stdout).toMatch(/^JWT_SECRET\s+\*{8}\s+environment\s+/m)
    expect(r.stdout).toMatch(/^DATABASE_URL\s+postgres:\/\/\*\*\*@db:5432\/flowgate\s+environment/m)
    for (const secret of ['a-very-private', 'dbpassword', 'admin-password-1']) expect(r.stdout).not.toContain(secret)
  })
})

describe('start-up failures', () => {
  let holder: Server
  let held: number
  beforeAll(async () => {
    held = await freePort()
    holder = createServer()
    await new Promise<void>((resolve) => holder.listen(held, '127.0.0.1', resolve))
  })
  afterAll(() => new Promise<void>((resolve) => holder.close(() => resolve())))

  it('a port in use is one clear line on stderr, not a stack', async () => {
    const r = await run(['gateway'], { NATS_URL: nats.url, PORT: String(held), NODE_ENV: 'test', LOG_LEVEL: 'warn' })
    expect(r.code).toBe(1)
    expect(lines(r.stderr)).toEqual([`flowgate: 127.0.0.1:${held} is already in use (another Flowgate, or another server); choose another port with PORT (gateway), CACHE_PROXY_PORT or CACHE_PROXY_METRICS_PORT`])
    expect(r.stdout).not.toMatch(/\n\s+at /)
  })
})

describe('a lost admin password', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase('cli_admin', { migrate: false })
  })
  afterAll(async () => {
    await db?.drop()
  })

  it('`admin reset-password` sets ADMIN_PASSWORD or prints a random one once; the seed says when ADMIN_PASSWORD is not the stored one', { timeout: 60_000 }, async () => {
    const env = { DATA_DIR: tempDir('cli-admin'), DATABASE_URL: db.url, LOG_LEVEL: 'warn' }
    const email = 'admin@flowgate.local'
    const notice = `seed: ADMIN_PASSWORD is not the stored password of ${email}`
    const seeded = await run(['db', 'seed'], env)
    expect(seeded.code).toBe(0)
    expect(seeded.stdout).toMatch(new RegExp(`root admin ${email} created with password \\S+`))

    // set after the first start: said, not silently ignored
    const later = await run(['db', 'seed'], { ...env, ADMIN_PASSWORD: 'chosen-password-1' })
    expect(later.stdout).toContain(notice)
    expect(later.stdout).toContain(`flowgate admin reset-password ${email}`)

    const fromEnv = await run(['admin', 'reset-password', email], { ...env, ADMIN_PASSWORD: 'chosen-password-1' })
    expect(fromEnv.code).toBe(0)
    expect(fromEnv.stdout).toContain(`admin ${email}: password set from ADMIN_PASSWORD`)
    expect((await run(['db', 'seed'], { ...env, ADMIN_PASSWORD: 'chosen-password-1' })).stdout).not.toContain(notice)

    const random = await run(['admin', 'reset-password', ` ${email.toUpperCase()} `], env)
    expect(random.code).toBe(0)
    const printed = /new password (\S+) {2}\(shown once\)/.exec(random.stdout)?.[1]
    expect(printed).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect((await run(['db', 'seed'], { ...env, ADMIN_PASSWORD: printed! })).stdout).not.toContain(notice)
    expect((await run(['db', 'seed'], { ...env, ADMIN_PASSWORD: 'chosen-password-1' })).stdout).toContain(notice)

    const unknown = await run(['admin', 'reset-password', 'nobody@example.com'], env)
    expect(unknown.code).toBe(1)
    expect(unknown.stdout).toContain('no admin with the email nobody@example.com')
    const usage = runCli(['admin', 'reset-password'], env)
    expect(await usage.exit).toBe(2)
    expect(usage.output()).toContain('usage: flowgate admin reset-password <email>')
  })
})
