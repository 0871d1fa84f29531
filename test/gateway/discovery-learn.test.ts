// A worker that announces itself is asked directly, by its instance id: its routes are served as
// soon as it answers, not after a whole discovery round's wait. What arrives on the announce subject
// is checked first, since any peer allowed to announce can put anything there.
import { Type } from '@sinclair/typebox'
import { connect, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineFlow, type Flow } from '../../flows/define.js'
import type { Config } from '../../lib/config.js'
import { subjects } from '../../lib/subjects.js'
import { parseAnnounce } from '../../server/discovery.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { captureLogs, sleep, startGateway, startWorker, testConfig, type TestGateway, type TestWorker } from '../harness/stack.js'

const flow = (name: string, path: string) =>
  defineFlow({
    name,
    input: Type.Object({}),
    output: Type.Object({ ok: Type.Boolean() }),
    http: { method: 'GET', path },
    auth: 'public',
    async run() {
      return { ok: true }
    },
  }) as unknown as Flow

// A round waits 3 s for answers, and the periodic rounds are a minute apart: only a direct ask is fast.
const WAIT_MS = 3000
let nats: NatsServer
let config: Config
let gw: TestGateway
let peer: NatsConnection
const workers: TestWorker[] = []
const logs = captureLogs('warn')

beforeAll(async () => {
  nats = await startNats()
  config = testConfig(nats.url, { discoveryWaitMs: WAIT_MS, discoveryIntervalMs: 60_000 })
  gw = await startGateway(config, logs.log)
  peer = await connect({ servers: nats.url })
}, 30_000)

afterAll(async () => {
  for (const w of workers) await w.stop()
  await peer?.close()
  await gw?.stop()
  await nats?.stop()
})

async function timeUntilRoute(path: string, timeoutMs: number): Promise<number> {
  const t0 = performance.now()
  while (!gw.gateway.discovery.table().find('GET', path)) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`no route ${path} after ${timeoutMs} ms`)
    await sleep(5)
  }
  return performance.now() - t0
}

describe('discovery of an announced worker', () => {
  it('serves a new worker once it answered its own INFO, well inside one round', async () => {
    const starting = startWorker(config, [flow('learn.first', '/learn/first')], logs.log)
    const worker = await starting
    workers.push(worker)
    expect(await timeUntilRoute('/api/v1/learn/first', WAIT_MS)).toBeLessThan(WAIT_MS / 3)
    const res = await gw.gateway.app.inject({ method: 'GET', url: '/api/v1/learn/first' })
    expect(res.statusCode).toBe(200)
    expect(res.json().data).toEqual({ ok: true })
  })

  it('learn() asks given instances directly and resolves when they answered', async () => {
    // A worker whose announce this gateway never sees (published before the gateway listened, say).
    const silent = await startWorker(config, [flow('learn.second', '/learn/second')], logs.log)
    workers.push(silent)
    const t0 = performance.now()
    await gw.gateway.discovery.learn([silent.worker.instance])
    expect(performance.now() - t0).toBeLessThan(WAIT_MS / 3)
    expect(gw.gateway.discovery.table().find('GET', '/api/v1/learn/second')).toBeDefined()
    // Asking an instance that is not there ends at once (no responders), and takes nothing away.
    const t1 = performance.now()
    await gw.gateway.discovery.learn([{ ...silent.worker.instance, id: 'NOSUCHINSTANCE' }])
    expect(performance.now() - t1).toBeLessThan(WAIT_MS / 3)
    expect(gw.gateway.discovery.table().find('GET', '/api/v1/learn/first')).toBeDefined()
  })

  it('answers junk on the announce subject with one full round, not a crash', async () => {
    const before = gw.gateway.discovery.table().routes.length
    for (const junk of ['', 'not json', '{"service":"flowgate-flows","id":"a.b"}', '{"__proto__":{"service":"x","id":"y"}}', '\u0000', '[1,2]', 'x'.repeat(70_000)]) {
      peer.publish(subjects.discoveryAnnounce, junk)
    }
    await peer.flush()
    // A full round (3 s) later the table is what the workers serve: nothing added, nothing lost.
    await sleep(WAIT_MS + 500)
    expect(gw.gateway.discovery.table().routes.length).toBe(before)
    const res = await gw.gateway.app.inject({ method: 'GET', url: '/api/v1/learn/first' })
    expect(res.statusCode).toBe(200)
    expect(logs.lines.filter((l) => l.level === 'error' || l.level === 50)).toEqual([])
  }, 15_000)
})

describe('parseAnnounce', () => {
  const enc = (s: string) => new TextEncoder().encode(s)
  it('takes a service name and an instance id that are single subject tokens', () => {
    expect(parseAnnounce(enc('{"service":"flowgate-flows","id":"Z3x9_q-1"}'))).toEqual({ service: 'flowgate-flows', id: 'Z3x9_q-1' })
  })
  it('refuses what would change the subject asked, or is not an announcement', () => {
    for (const bad of [
      '{"service":"flowgate-flows","id":"a.b"}',
      '{"service":"flowgate-flows","id":"*"}',
      '{"service":"flowgate-flows","id":">"}',
      '{"service":"flowgate flows","id":"x"}',
      '{"service":"flowgate-flows","id":"x\\u0000"}',
      `{"service":"flowgate-flows","id":"${'x'.repeat(65)}"}`,
      '{"service":"flowgate-flows","id":7}',
      '{"__proto__":{"service":"flowgate-flows","id":"x"}}',
      '{"service":"flowgate-flows"}',
      'null',
      '"x"',
      '{',
      '',
    ]) {
      expect(parseAnnounce(enc(bad)), bad).toBeUndefined()
    }
  })
})
