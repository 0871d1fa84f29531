// The built CLI as users run it: real processes, real signals, real NATS. `npm test` builds first.
import { existsSync } from 'node:fs'
import { Type } from '@sinclair/typebox'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineFlow, type Flow } from '../../flows/define.js'
import { captureLogs, startWorker, testConfig, type TestWorker } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { CLI, freePort, runCli, tempDir, waitFor } from '../harness/process.js'

const slow = defineFlow({
  name: 'clitest.slow',
  input: Type.Object({ ms: Type.Integer({ minimum: 0, maximum: 5000 }) }),
  output: Type.Object({ waited: Type.Integer() }),
  http: { method: 'GET', path: '/clitest/slow' },
  auth: 'public',
  async run(input) {
    await new Promise((r) => setTimeout(r, input.ms))
    return { waited: input.ms }
  },
}) as unknown as Flow

let nats: NatsServer
let worker: TestWorker
const logs = captureLogs('silent')

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  nats = await startNats()
  worker = await startWorker(testConfig(nats.url), [slow], logs.log)
})

afterAll(async () => {
  await worker?.stop()
  await nats?.stop()
})

describe('flowgate CLI', () => {
  it('prints every setting with `config`', async () => {
    const p = runCli(['config'], {})
    expect(await p.exit).toBe(0)
    expect(p.output()).toMatch(/^PORT\s+3000\s+default\s+gateway HTTP port/m)
    expect(p.output()).toMatch(/^NATS_URL\s+default\s+NATS server\(s\)/m)
  })

  it('exits 1 listing every invalid variable', async () => {
    const p = runCli(['gateway'], { PORT: 'eighty', LOG_LEVEL: 'loud' })
    expect(await p.exit).toBe(1)
    expect(p.output()).toMatch(/PORT: /)
    expect(p.output()).toMatch(/LOG_LEVEL: /)
    expect(p.output()).not.toMatch(/at .*\.js:\d+/) // no stack trace
  })

  it('refuses an unknown command with usage', async () => {
    const p = runCli(['launch'], {})
    expect(await p.exit).toBe(2)
    expect(p.output()).toMatch(/unknown command "launch"/)
    for (const name of ['constructor', 'toString', '__proto__']) {
      const q = runCli([name], { NODE_ENV: 'test' })
      expect(await q.exit, name).toBe(2)
      expect(q.output()).toContain(`unknown command "${name}"`)
    }
  })

  it('start with a NATS_URL it cannot reach says so and how to get NATS, waits, and stops on SIGTERM', async () => {
    const p = runCli(['start'], { NATS_URL: 'nats://127.0.0.1:1', DATA_DIR: tempDir('cli'), PORT: String(await freePort()), CACHE_PROXY_PORT: String(await freePort()) })
    await waitFor(() => p.output().includes('docker compose -f docker-compose.dev.yaml up -d'))
    expect(p.output()).toContain('NATS is not reachable at nats://127.0.0.1:1')
    p.child.kill('SIGTERM')
    expect(await p.exit).not.toBeNull()
  })

  it('gateway: serves, and on SIGTERM finishes the request in flight, then exits 0', { timeout: 30_000 }, async () => {
    const port = await freePort()
    const p = runCli(['gateway'], { NATS_URL: nats.url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'test', DISCOVERY_INTERVAL_MS: '200', RATE_LIMIT_CAPACITY: '1000', EVENTS_ENABLED: 'false' })
    try {
      await waitFor(() => p.output().includes('Flowgate is up'))
      const base = `http://127.0.0.1:${port}`
      await waitFor(async () => (await fetch(`${base}/ready`)).status === 200)
      const inflight = fetch(`${base}/api/v1/clitest/slow?ms=700`)
      await new Promise((r) => setTimeout(r, 150))
      p.child.kill('SIGTERM')
      const res = await inflight
      expect(res.status).toBe(200)
      expect(((await res.json()) as { data: unknown }).data).toEqual({ waited: 700 })
      expect(await p.exit).toBe(0)
      await expect(fetch(`${base}/health`)).rejects.toThrow()
    } catch (err) {
      throw new Error(`${String(err)}\n--- gateway output ---\n${p.output()}`)
    } finally {
      p.child.kill('SIGKILL')
    }
  })

  it('gateway with PORT=0 names the port it took, and answers there', async () => {
    const p = runCli(['gateway'], { NATS_URL: nats.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'test', EVENTS_ENABLED: 'false' })
    try {
      await waitFor(() => p.output().includes('Flowgate is up'))
      const port = Number(/curl http:\/\/127\.0\.0\.1:(\d+)\/api\/v1\/healthcheck/.exec(p.output())?.[1])
      expect(port).toBeGreaterThan(0)
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200)
    } finally {
      p.child.kill('SIGKILL')
    }
  })

  it('gateway started before NATS: listens at once with 503s, then serves when NATS comes up', async () => {
    const bus = await startNats()
    await bus.pause()
    const port = await freePort()
    const p = runCli(['gateway'], { NATS_URL: bus.url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_ENV: 'test', DISCOVERY_INTERVAL_MS: '200', NATS_CONNECT_TIMEOUT_MS: '300' })
    let w: TestWorker | undefined
    try {
      const base = `http://127.0.0.1:${port}`
      await waitFor(async () => (await fetch(`${base}/health`).catch(() => undefined))?.status === 200)
      expect((await fetch(`${base}/ready`)).status).toBe(503)
      const early = await fetch(`${base}/api/v1/clitest/slow?ms=1`)
      expect(early.status).toBe(503)
      expect(early.headers.get('x-trace-id')).toMatch(/^[0-9a-f]{32}$/)
      expect(await early.json()).toMatchObject({ success: false, errorCode: 'SERVICE_UNAVAILABLE' })
      await waitFor(() => p.output().includes('waiting for NATS'))
      await bus.restart()
      w = await startWorker(testConfig(bus.url), [slow], logs.log)
      await waitFor(async () => (await fetch(`${base}/api/v1/clitest/slow?ms=1`)).status === 200)
      expect((await fetch(`${base}/ready`)).status).toBe(200)
      p.child.kill('SIGTERM')
      expect(await p.exit).toBe(0)
    } catch (err) {
      throw new Error(`${String(err)}\n--- gateway output ---\n${p.output()}`)
    } finally {
      p.child.kill('SIGKILL')
      await w?.stop()
      await bus.stop()
    }
  }, 30_000)
})
