// `flowgate events tail` as users run it (the built CLI) against the nats-server installed here
// (2.9): stored events with --all, one kind with --all <kind>, Ctrl-C ends it, and a refusal by the
// server is printed with the server's own words instead of being retried in silence.
import { existsSync } from 'node:fs'
import { AckPolicy, connect, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Config } from '../../lib/config.js'
import { ensureGatewayStream } from '../../lib/streams.js'
import { streams, subjects } from '../../lib/subjects.js'
import { createEventPublisher } from '../../server/events/publisher.js'
import { captureLogs, testConfig } from '../harness/stack.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { CLI, runCli, waitFor, type CliProcess } from '../harness/process.js'

let nats: NatsServer
let config: Config
let nc: NatsConnection
const logs = captureLogs('silent')

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  nats = await startNats()
  config = testConfig(nats.url)
  nc = await connect({ servers: nats.url })
  await ensureGatewayStream(nc, config, logs.log)
  const publisher = createEventPublisher(nc, config, { log: logs.log, ensureStream: false })
  publisher.emit({ kind: 'rate_limit.hit', requestId: 'stored-1', traceId: 't', method: 'GET', route: '/r', clientKey: '198.51.100.1', address: '198.51.100.1', capacity: 1, refillPerSec: 1 })
  expect(await publisher.flush(5000)).toBe(true)
  await publisher.close()
  const blocked = { v: 1, id: 'block-198.51.100.1-1', ts: Date.now(), source: 'test', kind: 'ip.blocked', address: '198.51.100.1', reason: 'test', expiresAt: Date.now() + 60_000 }
  await nc.jetstream().publish(subjects.gatewayEvent('ip.blocked'), JSON.stringify(blocked))
})

afterAll(async () => {
  await nc?.close()
  await nats?.stop()
})

const env = () => ({ NATS_URL: nats.url, NODE_ENV: 'test', LOG_LEVEL: 'warn' })

/** Ctrl-C, then the exit code (or a failure when it does not stop within 3 s). */
async function interrupt(p: CliProcess): Promise<number | null> {
  p.child.kill('SIGINT')
  const code = await Promise.race([p.exit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 3000))])
  if (code === 'hung') {
    p.child.kill('SIGKILL')
    throw new Error(`events tail ignored Ctrl-C:\n${p.output()}`)
  }
  return code
}

describe('flowgate events tail', () => {
  it('--all prints the stored events, then new ones, and stops on Ctrl-C', async () => {
    const p = runCli(['events', 'tail', '--all'], env())
    await waitFor(() => p.output().includes('stored-1') && p.output().includes('ip.blocked'), 10_000).catch(() => {
      p.child.kill('SIGKILL')
      throw new Error(`nothing printed:\n${p.output()}`)
    })
    expect(p.output()).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z rate_limit\.hit +\{.*"requestId":"stored-1"/m)
    const publisher = createEventPublisher(nc, config, { log: logs.log, ensureStream: false })
    publisher.emit({ kind: 'rate_limit.hit', requestId: 'live-1', traceId: 't', method: 'GET', route: '/r', clientKey: 'k', address: '198.51.100.2', capacity: 1, refillPerSec: 1 })
    await publisher.flush(5000)
    await publisher.close()
    await waitFor(() => p.output().includes('live-1'), 10_000).catch((err: unknown) => {
      p.child.kill('SIGKILL')
      throw err
    })
    expect(await interrupt(p)).toBe(0)
    // the consumer it made is gone with it
    const jsm = await nc.jetstreamManager()
    const names: string[] = []
    for await (const c of jsm.consumers.list(streams.gateway)) names.push(c.name)
    expect(names).toEqual([])
  })

  it('--all <kind> prints only that kind', async () => {
    const p = runCli(['events', 'tail', '--all', 'ip.blocked'], env())
    await waitFor(() => p.output().includes('ip.blocked'), 10_000).catch(() => {
      p.child.kill('SIGKILL')
      throw new Error(`nothing printed:\n${p.output()}`)
    })
    expect(await interrupt(p)).toBe(0)
    expect(p.output()).not.toContain('rate_limit.hit')
  })

  it('fails with the server\'s message when the server refuses the consumer', async () => {
    const bus = await startNats()
    const own = await connect({ servers: bus.url })
    try {
      const jsm = await own.jetstreamManager()
      await jsm.streams.add({ name: streams.gateway, subjects: [subjects.gatewayAll], max_consumers: 1 })
      await jsm.consumers.add(streams.gateway, { durable_name: 'someone-else', ack_policy: AckPolicy.Explicit })
      const p = runCli(['events', 'tail', '--all'], { ...env(), NATS_URL: bus.url })
      const code = await Promise.race([p.exit, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000))])
      if (code === 'hung') p.child.kill('SIGKILL')
      expect(code).toBe(1)
      expect(p.output()).toMatch(/cannot tail FLOWGATE_GATEWAY: .*maximum consumers limit reached/)
    } finally {
      await own.close()
      await bus.stop()
    }
  })
})
