// A slow answer is not a dead connection: a script or a paused write holds only the clients behind
// it, SCRIPT KILL reaches Redis while a script runs, a dedicated connection Redis refuses to set up
// costs one error (not the client), and the proxy still shuts down at once.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { start } from '../../cache-proxy/main.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { encode, RawClient, rawCommands, startStack, type Stack } from './helpers.js'

let s: Stack
beforeAll(async () => {
  // replyTimeoutMs far below the scripts' run time: only the liveness check may drop anything.
  s = await startStack({ policy: 'version: 1\nrules:\n  - commands: [GET]\n    keys: ["*"]\nupstream:\n  replyTimeoutMs: 300\n' })
})
afterAll(async () => {
  await s?.stop()
})
beforeEach(async () => {
  // Redis answers other clients with -BUSY once a script has run this long.
  await s.direct.config('SET', 'busy-reply-threshold', '100')
})

const stat = async (name: string) => Number(new RegExp(`${name}\\r\\n:(\\d+)`).exec(String(await rawCommands(s.port, ['CACHE.STATS'])))![1])
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const LOOP = 'while true do end'
/** Runs about `ms` milliseconds, then returns 'done'. */
const RUN_FOR = (ms: number) =>
  `local t = redis.call('TIME') local from = t[1] * 1000000 + t[2] while true do local n = redis.call('TIME') if n[1] * 1000000 + n[2] - from > ${ms * 1000} then return 'done' end end`

describe('slow answers', () => {
  it('keeps other clients moving while a script runs, and lets SCRIPT KILL reach Redis', async () => {
    const errors = await stat('upstream_errors')
    const runner = await RawClient.open(s.port)
    runner.write(encode('EVAL', LOOP, '0'))
    await sleep(200)
    // Another client is not queued behind the script: it gets Redis's own answer at once.
    const t0 = Date.now()
    expect(String(await rawCommands(s.port, ['GET', 'k']))).toMatch(/^-BUSY /)
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(String(await rawCommands(s.port, ['SCRIPT', 'KILL']))).toBe('+OK\r\n')
    expect(String((await runner.replies(1))[0])).toMatch(/^-ERR .*Script killed by user with SCRIPT KILL/)
    runner.close()
    expect(String(await rawCommands(s.port, ['PING']))).toBe('+PONG\r\n')
    expect(await stat('upstream_errors')).toBe(errors)
    expect(await stat('redis_hung')).toBe(0)
  })

  it('waits for a script that runs longer than upstream.replyTimeoutMs instead of dropping its connection', async () => {
    const errors = await stat('upstream_errors')
    const t0 = Date.now()
    expect(String(await rawCommands(s.port, ['EVAL', RUN_FOR(1000), '0']))).toBe('$4\r\ndone\r\n')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000)
    expect(await stat('upstream_errors')).toBe(errors)
    expect(await stat('redis_hung')).toBe(0)
  })

  it('holds writes paused by CLIENT PAUSE WRITE without holding other clients’ reads, opening connections as needed', async () => {
    await s.direct.set('readable', 'r')
    const writers = await Promise.all([0, 1, 2].map(() => RawClient.open(s.port)))
    await s.direct.call('CLIENT', 'PAUSE', '1000', 'WRITE')
    const t0 = Date.now()
    // Each held write holds its connection; the next client goes to one that is not held.
    for (const [i, w] of writers.entries()) {
      w.write(encode('SET', `paused${i}`, 'w'))
      await sleep(100)
    }
    const reader = await RawClient.open(s.port)
    const r0 = Date.now()
    reader.write(encode('GET', 'readable'))
    expect(String((await reader.replies(1))[0])).toBe('$1\r\nr\r\n')
    expect(Date.now() - r0).toBeLessThan(300)
    expect(await stat('shared_connections')).toBeGreaterThan(2)
    for (const w of writers) expect(String((await w.replies(1))[0])).toBe('+OK\r\n')
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    for (const w of writers) w.close()
    // The reader stays on its (extra) connection, now tracked: its next read is cached there.
    const get = async () => {
      reader.write(encode('GET', 'readable'))
      expect(String((await reader.replies(1))[0])).toBe('$1\r\nr\r\n')
    }
    await get()
    const hits = await stat('hits')
    await get()
    expect(await stat('hits')).toBe(hits + 1)
    // Idle extra connections close; what was read on them leaves the cache, as Redis stops tracking it.
    const pool = s.proxy.proxy.defaultPool
    pool.sweep(Date.now() + 31_000)
    expect(pool.conns.length).toBe(2)
    const misses = await stat('misses')
    await get()
    expect(await stat('misses')).toBe(misses + 1)
    reader.close()
  })
})

describe('dedicated connections Redis refuses to set up', () => {
  it('answers the command that needed one with Redis’s error and keeps the client', async () => {
    const c = await RawClient.open(s.port)
    c.write(encode('SELECT', '1'))
    expect(String((await c.replies(1))[0])).toBe('+OK\r\n')
    const runner = await RawClient.open(s.port)
    runner.write(encode('EVAL', LOOP, '0'))
    await sleep(200)
    // Its dedicated connection must SELECT 1 first, which Redis refuses with BUSY.
    c.write(encode('MULTI'))
    expect(String((await c.replies(1))[0])).toMatch(/^-BUSY /)
    expect(c.closed).toBe(false)
    expect(String(await rawCommands(s.port, ['SCRIPT', 'KILL']))).toBe('+OK\r\n')
    await runner.replies(1)
    runner.close()
    c.write(Buffer.concat([encode('MULTI'), encode('SET', 'in-db-1', 'v'), encode('EXEC')]))
    expect((await c.replies(3)).map(String)).toEqual(['+OK\r\n', '+QUEUED\r\n', '*1\r\n+OK\r\n'])
    c.close()
    await s.direct.select(1)
    expect(await s.direct.get('in-db-1')).toBe('v')
    await s.direct.select(0)
  })

  it('shuts down at once while a script runs and clients wait, pinned or not', async () => {
    const config = parseConfig({ redisUrl: s.redis.url, cacheProxyPort: 0, logLevel: 'silent' })
    const proxy = await start(config, createLogger(config))
    const runner = await RawClient.open(proxy.address.port)
    const pinned = await RawClient.open(proxy.address.port)
    const waiting = await RawClient.open(proxy.address.port)
    try {
      pinned.write(encode('BLPOP', 'never', '0'))
      await sleep(50)
      runner.write(encode('EVAL', LOOP, '0'))
      await sleep(200)
      waiting.write(Buffer.concat([encode('SELECT', '2'), encode('MULTI')]))
      await sleep(100)
      const t0 = Date.now()
      expect(await proxy.close()).toBe(true)
      expect(Date.now() - t0).toBeLessThan(1000)
      await Promise.all([runner.waitClosed(), pinned.waitClosed(), waiting.waitClosed()])
    } finally {
      await rawCommands(s.port, ['SCRIPT', 'KILL']).catch(() => undefined)
    }
  })
})
