// Bad input and faults: malformed RESP, clients that misbehave, Redis down, killed and restarted.
import { writeFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { start } from '../../cache-proxy/main.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { freePort, waitFor } from '../harness/process.js'
import { startRedis } from '../harness/redis.js'
import { encode, RawClient, rawCommands, startStack, upstreamCalls, type Stack } from './helpers.js'

const POLICY = `version: 1
rules:
  - commands: [GET]
    keys: ['*']
singleflight:
  waitTimeoutMs: 300
limits:
  maxClientOutputBytes: 2097152
`
let s: Stack
beforeAll(async () => {
  s = await startStack({ policy: POLICY })
})
afterAll(async () => {
  await s?.stop()
})

async function expectAlive(port: number): Promise<void> {
  expect(String(await rawCommands(port, ['PING']))).toBe('+PONG\r\n')
}

describe('malformed input', () => {
  const cases: Array<[string, string | Buffer, string]> = [
    ['a bulk length of 2^40', `*2\r\n$3\r\nGET\r\n$${2 ** 40}\r\n`, '-ERR Protocol error: invalid bulk length\r\n'],
    ['arrays nested 10,000 deep', '*1\r\n'.repeat(10_000), "-ERR Protocol error: expected '$', got '*'\r\n"],
    ['a bad multibulk count', '*abc\r\n', '-ERR Protocol error: invalid multibulk length\r\n'],
    ['unbalanced quotes inline', 'SET "a b\r\n', '-ERR Protocol error: unbalanced quotes in request\r\n'],
  ]
  for (const [name, bytes, error] of cases) {
    it(`answers ${name} with Redis's protocol error and closes only that client`, async () => {
      const c = await RawClient.open(s.port)
      c.write(bytes)
      expect(String((await c.replies(1))[0])).toBe(error)
      await c.waitClosed()
      await expectAlive(s.port)
    })
  }

  it('survives random garbage', async () => {
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.open(s.port)
      c.write(Buffer.from(Array.from({ length: 2000 }, () => Math.floor(Math.random() * 256))))
      await new Promise((r) => setTimeout(r, 10))
      c.close()
    }
    await expectAlive(s.port)
  })
})

describe('misbehaving clients', () => {
  it('disconnects a client that never reads once its output passes the bound', async () => {
    await s.direct.set('big', Buffer.alloc(512 * 1024, 'x'))
    const c = await RawClient.open(s.port)
    c.socket.pause()
    c.write(Buffer.concat(Array.from({ length: 200 }, () => encode('GET', 'big'))))
    await waitFor(async () => /output_limit_disconnects\r\n:[1-9]/.test(String(await rawCommands(s.port, ['CACHE.STATS']))))
    c.close()
    await expectAlive(s.port)
  })

  it('copes with clients that disconnect with replies pending', async () => {
    for (let i = 0; i < 10; i++) {
      const c = await RawClient.open(s.port)
      c.write(Buffer.concat(Array.from({ length: 1000 }, (_, j) => encode('GET', `gone:${i}:${j}`))))
      c.close()
    }
    await expectAlive(s.port)
  })
})

describe('singleflight', () => {
  it('gives each waiter its own deadline, then caches the late reply; errors are not cached', async () => {
    await s.direct.set('slow', 'v')
    const blocker = new Redis(s.redis.port, '127.0.0.1')
    await blocker.ping()
    const sleeping = blocker.call('DEBUG', 'SLEEP', '0.8')
    await new Promise((r) => setTimeout(r, 50))
    const a = await RawClient.open(s.port)
    const b = await RawClient.open(s.port)
    const t0 = Date.now()
    a.write(encode('GET', 'slow'))
    await new Promise((r) => setTimeout(r, 150))
    b.write(encode('GET', 'slow'))
    const ra = String((await a.replies(1))[0])
    const ta = Date.now() - t0
    const rb = String((await b.replies(1))[0])
    const tb = Date.now() - t0
    expect(ra).toMatch(/^-ERR timed out/)
    expect(rb).toMatch(/^-ERR timed out/)
    expect(ta).toBeLessThan(700)
    expect(tb).toBeGreaterThan(ta + 50)
    await sleeping
    blocker.disconnect()
    await waitFor(async () => String(await rawCommands(s.port, ['GET', 'slow'])) === '$1\r\nv\r\n')
    a.close()
    b.close()

    await s.direct.rpush('alist', 'x')
    const before = await upstreamCalls(s.direct, 'get')
    for (let i = 0; i < 3; i++) expect(String(await rawCommands(s.port, ['GET', 'alist']))).toMatch(/^-WRONGTYPE/)
    expect((await upstreamCalls(s.direct, 'get')) - before).toBe(3)
  })
})

describe('policy reload', () => {
  it('applies a good edit, keeps the last good policy on a bad one', async () => {
    writeFileSync(s.policyFile!, `${POLICY}refuse: [KEYS]\nstateful: refuse\n`)
    await waitFor(async () => String(await rawCommands(s.port, ['KEYS', '*'])).includes('refused by the cache proxy policy'))
    expect(String(await rawCommands(s.port, ['MULTI']))).toMatch(/^-ERR command 'MULTI' needs a dedicated connection/)
    writeFileSync(s.policyFile!, 'version: 1\nrules: [oops\n')
    await new Promise((r) => setTimeout(r, 300))
    expect(String(await rawCommands(s.port, ['KEYS', '*']))).toContain('refused by the cache proxy policy')
    writeFileSync(s.policyFile!, POLICY)
    await waitFor(async () => String(await rawCommands(s.port, ['KEYS', 'nothing*'])) === '*0\r\n')
  })
})

describe('redis faults', () => {
  it('fails at once while Redis is down at start, and recovers when it comes up', async () => {
    const port = await freePort()
    const config = parseConfig({ redisUrl: `redis://127.0.0.1:${port}`, cacheProxyPort: 0, logLevel: 'silent' })
    const proxy = await start(config, createLogger(config))
    try {
      const t0 = Date.now()
      expect(String(await rawCommands(proxy.address.port, ['GET', 'k']))).toMatch(/^-ERR upstream unavailable/)
      expect(Date.now() - t0).toBeLessThan(500)
      // A command needing a dedicated connection gets a clear error too.
      expect(String(await rawCommands(proxy.address.port, ['MULTI']))).toMatch(/^-ERR upstream (unavailable|connection lost)/)
      const redis = await startRedis({ port })
      try {
        await waitFor(async () => String(await rawCommands(proxy.address.port, ['SET', 'k', 'up'])) === '+OK\r\n')
        expect(String(await rawCommands(proxy.address.port, ['GET', 'k']))).toBe('$2\r\nup\r\n')
        await waitFor(async () => String(await rawCommands(proxy.address.port, ['CACHE.STATS'])).includes('tracking\r\n:1'))
      } finally {
        await redis.stop()
      }
    } finally {
      await proxy.close()
    }
  })

  it('fails pending and new commands when Redis dies mid-traffic, flushes, and recovers after a restart with tracking', async () => {
    await s.direct.set('survivor', 'before')
    expect(String(await rawCommands(s.port, ['GET', 'survivor']))).toBe('$6\r\nbefore\r\n')
    const c = await RawClient.open(s.port)
    const busy = new Redis(s.redis.port, '127.0.0.1', { maxRetriesPerRequest: 0, retryStrategy: () => null })
    busy.on('error', () => undefined)
    void busy.call('DEBUG', 'SLEEP', '2').catch(() => undefined)
    await new Promise((r) => setTimeout(r, 50))
    c.write(Buffer.concat(Array.from({ length: 500 }, (_, i) => encode('GET', `mid:${i}`))))
    await new Promise((r) => setTimeout(r, 100))
    await s.redis.kill()
    const replies = (await c.replies(500)).map(String)
    expect(replies.every((r) => r.startsWith('-ERR upstream'))).toBe(true)
    const t0 = Date.now()
    expect(String(await rawCommands(s.port, ['GET', 'survivor']))).toMatch(/^-ERR upstream/)
    expect(Date.now() - t0).toBeLessThan(500)
    c.close()
    busy.disconnect()

    await s.redis.restart()
    await waitFor(async () => String(await rawCommands(s.port, ['PING'])) === '+PONG\r\n', 10_000)
    // The restarted Redis is empty: the old cached value must be gone.
    expect(String(await rawCommands(s.port, ['GET', 'survivor']))).toBe('$-1\r\n')
    await waitFor(async () => String(await rawCommands(s.port, ['CACHE.STATS'])).includes('tracking\r\n:1'), 10_000)
    const direct = new Redis(s.redis.port, '127.0.0.1')
    try {
      await direct.set('after', 'one')
      await waitFor(async () => String(await rawCommands(s.port, ['GET', 'after'])) === '$3\r\none\r\n')
      await direct.set('after', 'two')
      await waitFor(async () => String(await rawCommands(s.port, ['GET', 'after'])) === '$3\r\ntwo\r\n')
    } finally {
      direct.disconnect()
    }
  })
})
