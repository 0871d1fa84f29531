// 5,000 concurrent requests across three targets, one of them flapping (killed and restarted every
// 150 ms), for each balancer: every request answered 200 (GETs retried on another target), none
// lost, and the steady targets share the load as the balancer says.
import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNats, type NatsServer } from '../harness/nats.js'
import { captureLogs } from '../harness/stack.js'
import { startProxyGateway, startUpstream, type TestUpstream } from './harness.js'

const N = 5000
let nats: NatsServer
let a: TestUpstream
let b: TestUpstream
let c: TestUpstream
const sink = captureLogs('error')

beforeAll(async () => {
  nats = await startNats()
  const handler = (name: string) => (_req: unknown, res: import('node:http').ServerResponse) => {
    // A little latency so that thousands are in flight at once.
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(name)
    }, 5)
  }
  a = await startUpstream('a', handler('a'))
  b = await startUpstream('b', handler('b'))
  c = await startUpstream('c', handler('c'))
})

afterAll(async () => {
  for (const u of [a, b, c]) await u?.stop()
  await nats?.stop()
})

async function run(balancer: string): Promise<{ statuses: Map<number, number>; by: Record<string, number>; answered: number }> {
  const gw = await startProxyGateway(
    nats.url,
    {
      upstreams: {
        trio: {
          balancer,
          targets: [{ url: a.url, weight: 5 }, { url: b.url, weight: 1 }, { url: c.url, weight: 1 }],
          connections: 256,
          maxPending: N,
          timeouts: { connectMs: 1000, tryMs: 10_000, requestMs: 30_000 },
          // Envoy's floor of 3 concurrent retries is too low when the flapping target dies with a
          // dozen requests on it as the run tails off: one of them would get its 502.
          retry: { retries: 2, backoffBaseMs: 1, backoffMaxMs: 10, minRetryConcurrency: 50 },
        },
      },
      routes: [{ path: '/trio/*', upstream: 'trio', auth: 'public' }],
    },
    sink.log,
    {},
    // 5,000 clients connect at once: Node's default accept backlog (511) would drop their SYNs
    // on a busy machine, and the test would measure the kernel instead of the proxy.
    { backlog: 4096 },
  )
  const client = new Pool(gw.base, { connections: N, pipelining: 1, headersTimeout: 60_000, connectTimeout: 60_000 })
  let flapping = true
  const flap = (async () => {
    while (flapping) {
      await new Promise((r) => setTimeout(r, 150))
      await c.kill()
      await new Promise((r) => setTimeout(r, 150))
      await c.restart()
    }
  })()
  const statuses = new Map<number, number>()
  const by: Record<string, number> = {}
  let answered = 0
  try {
    await Promise.all(
      Array.from({ length: N }, async (_v, i) => {
        const res = await client.request({ path: `/trio/${i}`, method: 'GET' })
        const text = await res.body.text()
        answered++
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
        if (res.statusCode === 200) by[text] = (by[text] ?? 0) + 1
      }),
    )
  } finally {
    flapping = false
    await flap
    await client.close()
    await gw.stop()
  }
  return { statuses, by, answered }
}

describe(`${N} concurrent requests, three targets, one flapping`, () => {
  it.each(['round-robin', 'least-connections', 'weighted-round-robin', 'p2c-ewma'])(
    '%s: every request answered 200, none lost, the load shared as specified',
    async (balancer) => {
      const { statuses, by, answered } = await run(balancer)
      expect(answered).toBe(N)
      expect([...statuses]).toEqual([[200, N]])
      expect((by.a ?? 0) + (by.b ?? 0) + (by.c ?? 0)).toBe(N)
      // The flapping target takes less than a steady one of the same weight.
      expect(by.c ?? 0).toBeLessThan(by.b ?? 0)
      const ratio = (by.a ?? 0) / (by.b ?? 1)
      if (balancer === 'weighted-round-robin') {
        expect(ratio).toBeGreaterThan(3.5) // weights 5:1, interleaved
        expect(ratio).toBeLessThan(7)
      } else {
        // Weights are ignored: the two steady targets share about equally.
        expect(ratio).toBeGreaterThan(0.6)
        expect(ratio).toBeLessThan(1.67)
      }
    },
    120_000,
  )
})
