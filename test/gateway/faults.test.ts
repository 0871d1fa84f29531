// Workers coming and going, NATS going away, load beyond the bound: each against a real nats-server.
import { Type } from '@sinclair/typebox'
import type { InjectOptions } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineFlow, type Flow } from '../../flows/define.js'
import type { Config } from '../../lib/config.js'
import { captureLogs, sleep, startGateway, startWorker, testConfig, waitForRoute, type TestGateway } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'

const seen = { executions: 0, active: 0, maxActive: 0, byWorker: new Map<string, number>() }
let release: () => void = () => {}
let released = new Promise<void>((r) => (release = r))

function countFlow(workerName: string) {
  return defineFlow({
    name: 'test.count',
    input: Type.Object({ i: Type.Integer() }),
    output: Type.Object({ i: Type.Integer() }),
    http: { method: 'POST', path: '/test/count' },
    auth: 'public',
    async run(input) {
      seen.executions++
      seen.byWorker.set(workerName, (seen.byWorker.get(workerName) ?? 0) + 1)
      await sleep(2)
      return { i: input.i }
    },
  }) as unknown as Flow
}

const gate = defineFlow({
  name: 'test.gate',
  input: Type.Object({}),
  output: Type.Object({}),
  http: { method: 'GET', path: '/test/gate' },
  auth: 'public',
  timeoutMs: 10_000,
  async run() {
    seen.active++
    seen.maxActive = Math.max(seen.maxActive, seen.active)
    await released
    seen.active--
    return {}
  },
}) as unknown as Flow

const ping = defineFlow({
  name: 'test.ping',
  input: Type.Object({}),
  output: Type.Object({ pong: Type.Boolean() }),
  http: { method: 'GET', path: '/test/ping' },
  auth: 'public',
  async run() {
    return { pong: true }
  },
}) as unknown as Flow

let nats: NatsServer
let config: Config
let gw: TestGateway
const logs = captureLogs('warn')

beforeAll(async () => {
  nats = await startNats()
  config = testConfig(nats.url, { flowConcurrency: 4, flowQueueLimit: 2, requestTimeoutMs: 3000 })
  gw = await startGateway(config, logs.log)
})

afterAll(async () => {
  await gw?.stop()
  await nats?.stop()
})

const inject = (opts: InjectOptions) => gw.gateway.app.inject(opts)

describe('workers coming and going', () => {
  it('serves a worker started after the gateway, without a restart', async () => {
    expect((await inject({ method: 'GET', url: '/api/v1/test/ping' })).statusCode).toBe(404)
    const w = await startWorker(config, [ping], logs.log)
    try {
      // The worker announces itself: the route appears well before the next periodic round would matter.
      await waitForRoute(gw.gateway, 'GET', '/api/v1/test/ping', true, 2000)
      const res = await inject({ method: 'GET', url: '/api/v1/test/ping' })
      expect(res.json()).toMatchObject({ success: true, data: { pong: true } })
    } finally {
      await w.stop()
    }
  })

  it('answers 503 at once when no worker serves a known route, then 404 once the route is gone', async () => {
    const w = await startWorker(config, [ping], logs.log)
    await waitForRoute(gw.gateway, 'GET', '/api/v1/test/ping')
    await w.stop()
    // The route is still in the table (it goes after three missed discovery rounds): the bus says no responders.
    expect(gw.gateway.discovery.table().find('GET', '/api/v1/test/ping')).toBeDefined()
    const t0 = Date.now()
    const res = await inject({ method: 'GET', url: '/api/v1/test/ping' })
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ errorCode: 'SERVICE_UNAVAILABLE', message: 'No flow is serving api.v1.test.ping' })
    expect(Date.now() - t0).toBeLessThan(500)
    await waitForRoute(gw.gateway, 'GET', '/api/v1/test/ping', false)
    expect((await inject({ method: 'GET', url: '/api/v1/test/ping' })).statusCode).toBe(404)
  })

  it('two workers in one queue group run N requests exactly N times, and both take a share', async () => {
    const roomy = { ...config, flowConcurrency: 64, flowQueueLimit: 1000 }
    const a = await startWorker(roomy, [countFlow('a')], logs.log)
    const b = await startWorker(roomy, [countFlow('b')], logs.log)
    try {
      await waitForRoute(gw.gateway, 'POST', '/api/v1/test/count')
      seen.executions = 0
      seen.byWorker.clear()
      const N = 200
      const results = await Promise.all(
        Array.from({ length: N }, (_, i) => inject({ method: 'POST', url: '/api/v1/test/count', payload: { i } })),
      )
      expect(results.map((r) => r.json().data.i)).toEqual(Array.from({ length: N }, (_, i) => i))
      expect(seen.executions).toBe(N)
      expect(seen.byWorker.get('a')).toBeGreaterThan(0)
      expect(seen.byWorker.get('b')).toBeGreaterThan(0)
    } finally {
      await a.stop()
      await b.stop()
    }
  })

  it('runs requests concurrently up to the configured bound, queues a few, refuses the rest with 503', async () => {
    const w = await startWorker(config, [gate], logs.log)
    try {
      await waitForRoute(gw.gateway, 'GET', '/api/v1/test/gate')
      seen.active = 0
      seen.maxActive = 0
      released = new Promise<void>((r) => (release = r))
      // 4 run (FLOW_CONCURRENCY), 2 wait (FLOW_QUEUE_LIMIT), 4 are refused at once.
      const pending = Array.from({ length: 10 }, () => inject({ method: 'GET', url: '/api/v1/test/gate' }))
      const end = Date.now() + 3000
      while (seen.active < 4 && Date.now() < end) await sleep(10)
      await sleep(100)
      expect(seen.maxActive).toBe(4)
      expect(w.worker.stats()).toMatchObject({ running: 4, queued: 2, refused: 4 })
      release()
      const results = await Promise.all(pending)
      const codes = results.map((r) => r.statusCode).sort()
      expect(codes).toEqual([200, 200, 200, 200, 200, 200, 503, 503, 503, 503])
      expect(seen.maxActive).toBe(4)
    } finally {
      release()
      await w.stop()
    }
  })
})

describe('NATS going away', () => {
  it('answers fast 503s while NATS is down, recovers when it returns, and never crashes', async () => {
    const w = await startWorker(config, [gate, ping], logs.log)
    try {
      await waitForRoute(gw.gateway, 'GET', '/api/v1/test/ping')
      released = new Promise<void>((r) => (release = r))
      const inflight = inject({ method: 'GET', url: '/api/v1/test/gate' })
      await sleep(100)
      await nats.pause()
      const failed = await inflight
      expect(failed.statusCode).toBe(503)
      expect(failed.json().errorCode).toBe('SERVICE_UNAVAILABLE')
      const end = Date.now() + 2000
      while (gw.gateway.requester.connected() && Date.now() < end) await sleep(10)
      const t0 = Date.now()
      const during = await inject({ method: 'GET', url: '/api/v1/test/ping' })
      expect(during.statusCode).toBe(503)
      expect(Date.now() - t0).toBeLessThan(200)
      expect((await inject({ method: 'GET', url: '/ready' })).statusCode).toBe(503)
      release()
      await nats.restart()
      const back = Date.now() + 10_000
      let res = await inject({ method: 'GET', url: '/api/v1/test/ping' })
      while (res.statusCode !== 200 && Date.now() < back) {
        await sleep(100)
        res = await inject({ method: 'GET', url: '/api/v1/test/ping' })
      }
      expect(res.json()).toMatchObject({ success: true, data: { pong: true } })
    } finally {
      release()
      await w.stop()
    }
  })
})
