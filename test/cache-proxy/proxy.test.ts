// Transparency and caching through the proxy against a real redis-server.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { createClient, RESP_TYPES } from 'redis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encode, RawClient, rawCommands, startStack, upstreamCalls, type Stack } from './helpers.js'
import { waitFor } from '../harness/process.js'

const run = promisify(execFile)
let s: Stack

beforeAll(async () => {
  s = await startStack({
    policy: `version: 1
rules:
  - commands: [GET]
    keys: ['short:*']
    ttlSec: 0.6
  - commands: [GET, MGET, HGETALL, HGET, SMEMBERS]
    keys: ['*']
    ttlSec: 60
tags:
  rules:
    - keys: 'admin:list:*'
      tags: [admins]
  batchSize: 500
hotKeys:
  sampleRate: 1
  minScore: 5
`,
  })
})
afterAll(async () => {
  await s?.stop()
})

describe('transparency', () => {
  it('forwards reply bytes unchanged: binary values, empty, nil, errors, simple strings', async () => {
    const value = Buffer.from(Array.from({ length: 256 }, (_, i) => i).concat([13, 10, 13, 10]))
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('SET', 'bin', value), encode('GET', 'bin'), encode('GET', 'bin'), encode('SET', 'empty', ''), encode('GET', 'empty'), encode('GET', 'nope'), encode('NOSUCHCMD', 'x'), encode('LPUSH', 'bin', 'x')]))
    const r = (await c.replies(8)).map((b) => b.toString('latin1'))
    c.close()
    const bulk = `$${value.length}\r\n${value.toString('latin1')}\r\n`
    expect(r).toEqual([
      '+OK\r\n',
      bulk,
      bulk,
      '+OK\r\n',
      '$0\r\n\r\n',
      '$-1\r\n',
      "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' \r\n",
      '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n',
    ])
  })

  it('carries values of several megabytes both ways (requests and replies cut across many reads)', async () => {
    const r = new Redis(s.port, '127.0.0.1')
    try {
      const big = Buffer.alloc(6 * 1024 * 1024)
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff
      await r.set('huge', big)
      const [a, b] = await Promise.all([r.getBuffer('huge'), r.getBuffer('huge')])
      expect(a!.equals(big)).toBe(true)
      expect(b!.equals(big)).toBe(true)
      expect((await s.direct.getBuffer('huge'))!.equals(big)).toBe(true)
    } finally {
      r.disconnect()
    }
  })

  it('accepts inline commands, as telnet and redis-benchmark send them', async () => {
    const c = await RawClient.open(s.port)
    c.write('PING\r\nSET inl "a b"\r\nGET inl\nECHO \'x\'\r\n')
    expect((await c.replies(4)).map(String)).toEqual(['+PONG\r\n', '+OK\r\n', '$3\r\na b\r\n', '$1\r\nx\r\n'])
    c.close()
  })

  it('keeps pipelined replies in request order when a cached reply is ready before an earlier miss', async () => {
    await s.direct.set('warm', 'w')
    await rawCommands(s.port, ['GET', 'warm']) // now cached
    await s.direct.set('cold', 'c')
    const c = await RawClient.open(s.port)
    const cmds: Buffer[] = []
    for (let i = 0; i < 50; i++) cmds.push(encode('GET', 'cold'), encode('GET', 'warm'), encode('ECHO', String(i)))
    c.write(Buffer.concat(cmds))
    const r = (await c.replies(150)).map(String)
    for (let i = 0; i < 50; i++) expect(r.slice(i * 3, i * 3 + 3)).toEqual(['$1\r\nc\r\n', '$1\r\nw\r\n', `$${String(i).length}\r\n${i}\r\n`])
    c.close()
  })

  it('answers a 10,000-command pipeline completely and in order', async () => {
    const c = await RawClient.open(s.port)
    const cmds: Buffer[] = []
    for (let i = 0; i < 10_000; i++) cmds.push(i % 2 ? encode('ECHO', String(i)) : encode('GET', 'warm'))
    c.write(Buffer.concat(cmds))
    const r = await c.replies(10_000, 15_000)
    for (let i = 0; i < 10_000; i++) expect(String(r[i])).toBe(i % 2 ? `$${String(i).length}\r\n${i}\r\n` : '$1\r\nw\r\n')
    c.close()
  })

  it('gives the same replies when a pipeline is split at every byte boundary', async () => {
    await s.direct.set('split', 'v')
    const frame = Buffer.concat([encode('SET', 'split2', 'a\r\nb'), Buffer.from('PING\r\n'), encode('GET', 'split'), encode('GET', 'split2')])
    const expected = '+OK\r\n+PONG\r\n$1\r\nv\r\n$4\r\na\r\nb\r\n'
    await Promise.all(
      Array.from({ length: frame.length - 1 }, async (_, i) => {
        const c = await RawClient.open(s.port)
        c.write(frame.subarray(0, i + 1))
        await new Promise((r) => setTimeout(r, 5))
        c.write(frame.subarray(i + 1))
        expect(Buffer.concat(await c.replies(4)).toString('latin1')).toBe(expected)
        c.close()
      }),
    )
  })

  it('works with redis-cli, including RESP3', async () => {
    const cli = async (...args: string[]) => (await run('redis-cli', ['-p', String(s.port), ...args])).stdout.trim()
    expect(await cli('SET', 'cli', 'hello')).toBe('OK')
    expect(await cli('GET', 'cli')).toBe('hello')
    expect(await cli('-3', 'HGETALL', 'nohash')).toBe('')
    await s.direct.hset('h3', 'f', 'v')
    expect(await cli('-3', 'HGETALL', 'h3')).toBe('f v') // a map: redis-cli prints it on one line
  })

  it('runs the default redis-benchmark suite', async () => {
    const { stdout } = await run('redis-benchmark', ['-p', String(s.port), '-n', '300', '-c', '5', '-q'], { timeout: 30_000 })
    for (const t of ['PING_INLINE', 'PING_MBULK', 'SET', 'GET', 'INCR', 'LPUSH', 'RPUSH', 'LPOP', 'RPOP', 'SADD', 'HSET', 'SPOP', 'ZADD', 'ZPOPMIN', 'LRANGE_600', 'MSET'])
      expect(stdout).toMatch(new RegExp(`${t}[^\\r\\n]*: [\\d.]+ requests per second`))
  }, 40_000)

  it('works with ioredis (RESP2): pipelines, MULTI/EXEC on a pinned connection, SELECT', async () => {
    const r = new Redis(s.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
    try {
      await r.set('io', 'v1')
      expect(await r.get('io')).toBe('v1')
      const p = await r.pipeline().set('io2', 'x').get('io2').incr('ctr').exec()
      expect(p?.map((x) => x[1])).toEqual(['OK', 'x', 1])
      const m = await r.multi().set('tx', '1').incr('tx').get('tx').exec()
      expect(m?.map((x) => x[1])).toEqual(['OK', 2, '2'])
      // After MULTI the client is pinned; reads still work and see its writes.
      expect(await r.get('tx')).toBe('2')
    } finally {
      r.disconnect()
    }
    const d1 = new Redis(s.port, '127.0.0.1', { db: 1, maxRetriesPerRequest: 1 })
    try {
      await d1.set('dbkey', 'one')
      expect(await d1.get('dbkey')).toBe('one')
      expect(await s.direct.get('dbkey')).toBeNull()
    } finally {
      d1.disconnect()
    }
  })

  it('works with node-redis opening with HELLO 3 (maps come back as RESP3)', async () => {
    const c = createClient({ url: `redis://127.0.0.1:${s.port}`, RESP: 3 })
    await c.connect()
    try {
      await c.set('nr', 'v')
      expect(await c.get('nr')).toBe('v')
      await c.hSet('nrh', { a: '1', b: '2' })
      expect(await c.hGetAll('nrh')).toEqual({ a: '1', b: '2' })
      expect(await c.hGetAll('nrh')).toEqual({ a: '1', b: '2' }) // from the RESP3 cache
      await s.direct.hset('nrh', 'c', '3')
      await waitFor(async () => Object.keys(await c.hGetAll('nrh')).length === 3)
      const bin = c.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
      expect(await bin.get('nr')).toEqual(Buffer.from('v'))
    } finally {
      await c.quit()
    }
  })

  it('keeps shared connections in step when a command has several replies (UNSUBSCRIBE a b)', async () => {
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('UNSUBSCRIBE', 'a', 'b'), encode('PING')]))
    const r = (await c.replies(3)).map(String)
    expect(r[0]).toContain('unsubscribe')
    expect(r[1]).toContain('unsubscribe')
    c.close()
    expect(String(await rawCommands(s.port, ['ECHO', 'in step']))).toBe('$7\r\nin step\r\n')
  })

  it('relays SUBSCRIBE and blocking pops on dedicated connections', async () => {
    const sub = new Redis(s.port, '127.0.0.1')
    const got = new Promise<string>((resolve) => sub.on('message', (_ch, msg: string) => resolve(msg)))
    await sub.subscribe('news')
    await s.direct.publish('news', 'hi')
    expect(await got).toBe('hi')
    sub.disconnect()
    const b = new Redis(s.port, '127.0.0.1')
    const popped = b.blpop('queue', 5)
    await new Promise((r) => setTimeout(r, 100))
    await s.direct.rpush('queue', 'job')
    expect(await popped).toEqual(['queue', 'job'])
    b.disconnect()
  })
})

describe('caching', () => {
  it('makes exactly one upstream GET for 1,000 concurrent GETs of a cold key', async () => {
    await s.direct.set('cold1000', 'value')
    const before = await upstreamCalls(s.direct, 'get')
    const clients = await Promise.all(Array.from({ length: 50 }, () => RawClient.open(s.port)))
    const frame = Buffer.concat(Array.from({ length: 20 }, () => encode('GET', 'cold1000')))
    for (const c of clients) c.write(frame)
    const all = await Promise.all(clients.map((c) => c.replies(20)))
    for (const r of all) for (const x of r) expect(String(x)).toBe('$5\r\nvalue\r\n')
    for (const c of clients) c.close()
    expect((await upstreamCalls(s.direct, 'get')) - before).toBe(1)
  })

  it('never serves a stale read once the invalidation of a direct write has arrived', async () => {
    await s.direct.set('fresh', 'old')
    const r = new Redis(s.port, '127.0.0.1')
    try {
      expect(await r.get('fresh')).toBe('old')
      expect(await r.get('fresh')).toBe('old') // from the cache
      await s.direct.set('fresh', 'new')
      await waitFor(async () => (await r.get('fresh')) === 'new')
      for (let i = 0; i < 200; i++) expect(await r.get('fresh')).toBe('new')
      // A write through the proxy is read back at once (read-your-writes).
      for (let i = 0; i < 50; i++) {
        await r.set('fresh', `v${i}`)
        expect(await r.get('fresh')).toBe(`v${i}`)
      }
      // FLUSHDB through the proxy empties the local cache at once.
      await r.get('fresh')
      await r.flushdb()
      expect(await r.get('fresh')).toBeNull()
      await r.set('fresh', 'again')
      // FLUSHALL done directly reaches the cache as a tracking flush.
      await r.get('fresh')
      await s.direct.flushall()
      await waitFor(async () => (await r.get('fresh')) === null)
    } finally {
      r.disconnect()
    }
  })

  it('drops a cached key when it expires in Redis (tracking reports expiries)', async () => {
    await s.direct.set('expiring', 'soon', 'PX', 150)
    expect(String(await rawCommands(s.port, ['GET', 'expiring']))).toBe('$4\r\nsoon\r\n')
    await waitFor(async () => String(await rawCommands(s.port, ['GET', 'expiring'])) === '$-1\r\n', 3000)
  })

  it('flushes the local cache when the tracking connection drops, and tracks again', async () => {
    await s.direct.set('tracked', 'a')
    expect(String(await rawCommands(s.port, ['GET', 'tracked']))).toBe('$1\r\na\r\n')
    const flushes = async () => Number(/flushes\r\n:(\d+)/.exec(String(await rawCommands(s.port, ['CACHE.STATS'])))![1])
    const before = await flushes()
    expect(await s.direct.call('CLIENT', 'KILL', 'SKIPME', 'yes', 'TYPE', 'pubsub')).toBe(1)
    await waitFor(async () => (await flushes()) > before)
    await waitFor(async () => String(await rawCommands(s.port, ['CACHE.STATS'])).includes('tracking\r\n:1'))
    expect(String(await rawCommands(s.port, ['GET', 'tracked']))).toBe('$1\r\na\r\n')
    await s.direct.set('tracked', 'b')
    await waitFor(async () => String(await rawCommands(s.port, ['GET', 'tracked'])) === '$1\r\nb\r\n')
  })

  it('invalidates tags with one script per batch (EVALSHA, NOSCRIPT fallback), in Redis and locally', async () => {
    const r = new Redis(s.port, '127.0.0.1')
    try {
      const keys = Array.from({ length: 1200 }, (_, i) => `page:${i}`)
      await r.mset(...keys.flatMap((k) => [k, 'cached']))
      expect(await r.call('CACHE.TAG', 'pages', ...keys)).toBe(1200)
      expect(await r.get('page:7')).toBe('cached')
      await s.direct.script('FLUSH')
      const evalshaBefore = await upstreamCalls(s.direct, 'evalsha')
      expect(await r.call('CACHE.INVALIDATE', 'pages')).toBe(1200)
      expect(await upstreamCalls(s.direct, 'evalsha')).toBe(evalshaBefore + 3)
      expect(await upstreamCalls(s.direct, 'eval')).toBe(1)
      expect(await r.get('page:7')).toBeNull()
      expect(await s.direct.exists('flowgate:tag:pages')).toBe(0)
      // Policy tagging: a write through the proxy to a tagged pattern joins the tag.
      await r.set('admin:list:1', 'x')
      await waitFor(async () => (await s.direct.sismember('flowgate:tag:admins', 'admin:list:1')) === 1)
      expect(await r.call('CACHE.INVALIDATE', 'admins')).toBe(1)
      expect(await r.get('admin:list:1')).toBeNull()
    } finally {
      r.disconnect()
    }
  })

  it('refreshes a hot key before it expires, so it never expires under load, without touching its Redis TTL', async () => {
    await s.direct.set('short:hot', 'v')
    const stat = async (name: string) => Number(new RegExp(`${name}\\r\\n:(\\d+)`).exec(String(await rawCommands(s.port, ['CACHE.STATS'])))![1])
    const r = new Redis(s.port, '127.0.0.1')
    try {
      const misses = await stat('misses')
      const refreshes = await stat('refreshes')
      const end = Date.now() + 1500
      while (Date.now() < end) {
        expect(await r.get('short:hot')).toBe('v')
        await new Promise((res) => setTimeout(res, 10))
      }
      expect((await stat('misses')) - misses).toBe(1)
      expect((await stat('refreshes')) - refreshes).toBeGreaterThanOrEqual(1)
      expect(await s.direct.ttl('short:hot')).toBe(-1)
    } finally {
      r.disconnect()
    }
  })

  it('keeps RESP2 and RESP3 replies apart in the cache, and drops multi-key entries on a write of any key', async () => {
    await s.direct.hset('proto', 'f', 'v')
    const two = await RawClient.open(s.port)
    const three = await RawClient.open(s.port)
    try {
      two.write(Buffer.concat([encode('HGETALL', 'proto'), encode('HGETALL', 'proto')]))
      expect((await two.replies(2)).map(String)).toEqual(['*2\r\n$1\r\nf\r\n$1\r\nv\r\n', '*2\r\n$1\r\nf\r\n$1\r\nv\r\n'])
      three.write(Buffer.concat([encode('HELLO', '3'), encode('HGETALL', 'proto')]))
      expect(String((await three.replies(2))[1])).toBe('%1\r\n$1\r\nf\r\n$1\r\nv\r\n')

      await s.direct.mset('m1', 'a', 'm2', 'b')
      two.write(encode('MGET', 'm1', 'm2'))
      expect(String((await two.replies(1))[0])).toBe('*2\r\n$1\r\na\r\n$1\r\nb\r\n')
      two.write(Buffer.concat([encode('SET', 'm2', 'c'), encode('MGET', 'm1', 'm2')]))
      expect(String((await two.replies(2))[1])).toBe('*2\r\n$1\r\na\r\n$1\r\nc\r\n')
    } finally {
      two.close()
      three.close()
    }
  })

  it('detects hot keys and reports stats', async () => {
    await s.direct.set('hot', 'h')
    const r = new Redis(s.port, '127.0.0.1')
    try {
      for (let i = 0; i < 200; i++) await r.get('hot')
      const top = (await r.call('CACHE.HOTKEYS', '10')) as string[][]
      expect(top.map((t) => t[0])).toContain('hot')
      const stats = (await r.call('CACHE.STATS')) as Array<string | number>
      const m = new Map<string, string | number>()
      for (let i = 0; i < stats.length; i += 2) m.set(String(stats[i]), stats[i + 1]!)
      expect(Number(m.get('hits'))).toBeGreaterThan(100)
      expect(Number(m.get('hot_keys'))).toBeGreaterThanOrEqual(1)
      expect(Number(m.get('coalesced'))).toBeGreaterThan(0)
      const metrics = await s.registry.metrics()
      expect(metrics).toMatch(/^flowgate_cache_hits_total [1-9]\d*$/m)
      expect(metrics).toMatch(/^flowgate_cache_tracking_up 1$/m)
      expect(metrics).toMatch(/^flowgate_cache_bytes [1-9]\d*$/m)
    } finally {
      r.disconnect()
    }
  })
})
