// "Try it at once": `flowgate start` in development with no SERVICES_FILE runs two demo upstreams
// and routes /api/products to them, so curl answers and /lb-stats shows both targets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { parseConfig } from '../../lib/config.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { freePort, runCli, tempDir, waitFor, type CliProcess } from '../harness/process.js'

let nats: NatsServer
let cli: CliProcess | undefined

beforeAll(async () => {
  nats = await startNats()
})
afterAll(async () => {
  cli?.child.kill('SIGTERM')
  await cli?.exit
  await nats?.stop()
})

/** Set, so the test can sign an admin token (development otherwise generates one per data directory). */
const SECRET = 'demo-test-secret-of-at-least-32-characters'

describe('npm start in development', () => {
  it('answers /api/products from two demo upstreams and shows both in /lb-stats', async () => {
    const port = await freePort()
    cli = runCli(['start'], {
      NODE_ENV: 'development',
      NATS_URL: nats.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: tempDir('demo'),
      CACHE_PROXY_PORT: String(await freePort()),
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      LOG_LEVEL: 'warn',
      ADMIN_PASSWORD: 'demo-password-for-the-test',
      JWT_SECRET: SECRET,
    })
    await waitFor(() => cli!.output().includes('Flowgate is up'), 90_000)
    expect(cli.output()).toContain(`curl http://127.0.0.1:${port}/api/products`)
    const base = `http://127.0.0.1:${port}`
    const servedBy = new Set<string>()
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${base}/api/products`)
      expect(res.status).toBe(200)
      const body = (await res.json()) as { servedBy: string; products: unknown[] }
      expect(body.products).toHaveLength(3)
      servedBy.add(body.servedBy)
    }
    expect(servedBy).toEqual(new Set(['demo-products-1', 'demo-products-2']))
    expect((await fetch(`${base}/api/products/2`)).status).toBe(200)
    const token = createTokenService(parseConfig({ jwtSecret: SECRET })).sign({ sub: 'ops', role: 'admin' }).token
    const lb = (await (await fetch(`${base}/lb-stats`, { headers: { authorization: `Bearer ${token}` } })).json()) as { data: { upstreams: Array<{ upstream: string; targets: unknown[] }> } }
    expect(lb.data.upstreams.map((u) => [u.upstream, u.targets.length])).toEqual([['products', 2]])
  }, 120_000)
})
