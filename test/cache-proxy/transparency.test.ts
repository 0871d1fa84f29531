// What Redis's own test suite found through the proxy, each kept as a regression test against a
// real redis-server: expired keys served from the cache, connection identity, the order of a
// client moved to a dedicated connection, the close after a protocol error, and AUTH.
import { connect } from 'node:net'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../harness/process.js'
import { encode, RawClient, rawCommands, startStack, type Stack } from './helpers.js'

let s: Stack
beforeAll(async () => {
  // The built-in caching rules; administrative commands allowed, as the suite needs them.
  s = await startStack({
    policy: `version: 1
rules:
  - commands: [GET, MGET, HGET, HMGET, HGETALL, LRANGE, SMEMBERS, ZRANGE, ZSCORE, EXISTS, STRLEN]
    keys: ['*']
allowAdmin: true
`,
  })
})
afterAll(async () => {
  await s?.stop()
})

const stat = async (name: string) => Number(new RegExp(`${name}\\r\\n:(\\d+)`).exec(String(await rawCommands(s.port, ['CACHE.STATS'])))![1])
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('an entry never outlives its key', () => {
  it('serves no value of a key that expired in Redis, even when Redis has not expired it yet', async () => {
    // With active expiry off, only a read that reaches Redis would expire the key.
    await s.direct.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0')
    try {
      const c = await RawClient.open(s.port)
      await s.direct.psetex('short', 100, 'old')
      const hits = await stat('hits')
      c.write(encode('GET', 'short'))
      expect(String((await c.replies(1))[0])).toBe('$3\r\nold\r\n')
      c.write(encode('GET', 'short'))
      expect(String((await c.replies(1))[0])).toBe('$3\r\nold\r\n')
      expect(await stat('hits')).toBe(hits + 1)
      await sleep(101)
      c.write(Buffer.concat(Array.from({ length: 20 }, () => encode('GET', 'short'))))
      expect((await c.replies(20)).map(String)).toEqual(Array(20).fill('$-1\r\n'))
      c.close()
    } finally {
      await s.direct.call('DEBUG', 'SET-ACTIVE-EXPIRE', '1')
    }
  })

  it('gives ioredis nil for a key past its PX, whatever the rule’s TTL', async () => {
    await s.direct.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0')
    const r = new Redis(s.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
    try {
      await r.set('io-px', 'v', 'PX', 120)
      expect(await r.get('io-px')).toBe('v')
      expect(await r.get('io-px')).toBe('v')
      await sleep(121)
      for (let i = 0; i < 20; i++) expect(await r.get('io-px')).toBeNull()
    } finally {
      r.disconnect()
      await s.direct.call('DEBUG', 'SET-ACTIVE-EXPIRE', '1')
    }
  })

  it('caps a multi-key read by the key that expires first', async () => {
    await s.direct.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0')
    try {
      await s.direct.set('long', 'a')
      await s.direct.psetex('soon', 150, 'b')
      expect(String(await rawCommands(s.port, ['MGET', 'long', 'soon'], ['MGET', 'long', 'soon']))).toBe('*2\r\n$1\r\na\r\n$1\r\nb\r\n'.repeat(2))
      await sleep(151)
      expect(String(await rawCommands(s.port, ['MGET', 'long', 'soon']))).toBe('*2\r\n$1\r\na\r\n$-1\r\n')
    } finally {
      await s.direct.call('DEBUG', 'SET-ACTIVE-EXPIRE', '1')
    }
  })
})

describe('connection identity', () => {
  it('gives a client that names itself a connection of its own: CLIENT ID, SETNAME and LIST agree with Redis', async () => {
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('CLIENT', 'GETNAME'), encode('CLIENT', 'SETNAME', 'alpha'), encode('CLIENT', 'ID'), encode('CLIENT', 'GETNAME')]))
    const [noName, ok, id, name] = (await c.replies(4)).map(String)
    expect(noName).toBe('$-1\r\n')
    expect(ok).toBe('+OK\r\n')
    expect(name).toBe('$5\r\nalpha\r\n')
    const myId = /^:(\d+)/.exec(id!)![1]
    const list = String(await s.direct.call('CLIENT', 'LIST', 'ID', myId!))
    expect(list).toContain(`id=${myId} `)
    expect(list).toContain(' name=alpha ')
    c.write(encode('CLIENT', 'INFO'))
    expect(String((await c.replies(1))[0])).toContain(`id=${myId} `)
    c.close()
  })

  it('gives ioredis with a connection name its own connection under that name', async () => {
    const r = new Redis(s.port, '127.0.0.1', { connectionName: 'io-named', maxRetriesPerRequest: 1 })
    try {
      const id = Number(await r.client('ID'))
      expect(String(await s.direct.call('CLIENT', 'LIST', 'ID', String(id)))).toContain(' name=io-named ')
      expect(await r.client('GETNAME')).toBe('io-named')
      await r.set('io-named-key', 'v')
      expect(await r.get('io-named-key')).toBe('v')
    } finally {
      r.disconnect()
    }
  })

  it('CLIENT UNBLOCK with a client’s own id unblocks that client', async () => {
    const blocked = await RawClient.open(s.port)
    blocked.write(encode('CLIENT', 'ID'))
    const id = /^:(\d+)/.exec(String((await blocked.replies(1))[0]))![1]!
    blocked.write(encode('BLPOP', 'nothing-here', '0'))
    await waitFor(async () => Number(/blocked_clients:(\d+)/.exec(await s.direct.info('clients'))![1]) === 1)
    expect(String(await rawCommands(s.port, ['CLIENT', 'UNBLOCK', id]))).toBe(':1\r\n')
    expect(String((await blocked.replies(1))[0])).toBe('*-1\r\n')
    blocked.close()
  })

  it('CLIENT KILL from one client kills the client it names, never the proxy’s connections', async () => {
    const victim = await RawClient.open(s.port)
    victim.write(encode('CLIENT', 'ID'))
    const id = /^:(\d+)/.exec(String((await victim.replies(1))[0]))![1]!
    await s.direct.set('kept', 'v')
    expect(String(await rawCommands(s.port, ['GET', 'kept']))).toBe('$1\r\nv\r\n')
    const flushes = await stat('flushes')
    // SKIPME yes (the default) must mean the killer itself, so the killer has a connection of its own too.
    expect(String(await rawCommands(s.port, ['CLIENT', 'KILL', 'ID', id]))).toBe(':1\r\n')
    await victim.waitClosed()
    expect(String(await rawCommands(s.port, ['CLIENT', 'KILL', 'ID', id]))).toBe(':0\r\n')
    // The shared connections and tracking are untouched: nothing flushed, the cached value still served.
    expect(await stat('flushes')).toBe(flushes)
    expect(await stat('tracking')).toBe(1)
    const hits = await stat('hits')
    expect(String(await rawCommands(s.port, ['GET', 'kept']))).toBe('$1\r\nv\r\n')
    expect(await stat('hits')).toBe(hits + 1)
  })

  it('CLIENT TRACKING REDIRECT to another client’s id sends the invalidations to that client', async () => {
    const sink = await RawClient.open(s.port)
    const tracked = await RawClient.open(s.port)
    try {
      sink.write(Buffer.concat([encode('CLIENT', 'ID'), encode('SUBSCRIBE', '__redis__:invalidate')]))
      const [id] = (await sink.replies(2)).map(String)
      const sinkId = /^:(\d+)/.exec(id!)![1]!
      tracked.write(Buffer.concat([encode('CLIENT', 'TRACKING', 'ON', 'REDIRECT', sinkId), encode('GET', 'watched')]))
      expect((await tracked.replies(2)).map(String)).toEqual(['+OK\r\n', '$-1\r\n'])
      await s.direct.set('watched', '1')
      expect(String((await sink.replies(1))[0])).toBe('*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$7\r\nwatched\r\n')
    } finally {
      sink.close()
      tracked.close()
    }
  })
})

describe('a client moved to a dedicated connection keeps its order', () => {
  it('blocked clients reach Redis in the order they blocked (BRPOPLPUSH with multiple blocked clients)', async () => {
    for (let round = 0; round < 10; round++) {
      const rd1 = await RawClient.open(s.port)
      const rd2 = await RawClient.open(s.port)
      rd1.write(encode('PING'))
      rd2.write(encode('PING'))
      await rd1.replies(1)
      await rd2.replies(1)
      await s.direct.del('blist', 'target1', 'target2')
      await s.direct.set('target1', 'nolist')
      rd1.write(encode('BRPOPLPUSH', 'blist', 'target1', '0'))
      rd2.write(encode('BRPOPLPUSH', 'blist', 'target2', '0'))
      expect(String(await rawCommands(s.port, ['LPUSH', 'blist', 'foo']))).toBe(':1\r\n')
      expect(String((await rd1.replies(1))[0])).toMatch(/^-WRONGTYPE/)
      expect(String((await rd2.replies(1))[0])).toBe('$3\r\nfoo\r\n')
      expect(await s.direct.lrange('target2', 0, -1)).toEqual(['foo'])
      rd1.close()
      rd2.close()
    }
  })

  it('a blocking command runs after what the client sent before it', async () => {
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('DEL', 'q'), encode('RPUSH', 'q', 'first'), encode('BLPOP', 'q', '0'), encode('GET', 'after')]))
    expect((await c.replies(4)).map(String)).toEqual([':0\r\n', ':1\r\n', '*2\r\n$1\r\nq\r\n$5\r\nfirst\r\n', '$-1\r\n'])
    c.close()
  })
})

describe('dedicated connections', () => {
  it('answers the proxy’s own commands in place, and RESET returns the client to shared connections', async () => {
    await s.direct.set('shared-again', 'v')
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('CLIENT', 'SETNAME', 'named'), encode('CACHE.STATS'), encode('PING')]))
    const [ok, stats, pong] = (await c.replies(3)).map(String)
    expect(ok).toBe('+OK\r\n')
    expect(stats).toMatch(/^\*\d+\r\n\$4\r\nhits\r\n:\d+\r\n/)
    expect(stats).toContain('pinned_clients\r\n:1\r\n')
    expect(pong).toBe('+PONG\r\n')
    c.write(Buffer.concat([encode('RESET'), encode('CLIENT', 'GETNAME'), encode('GET', 'shared-again'), encode('GET', 'shared-again')]))
    expect((await c.replies(4)).map(String)).toEqual(['+RESET\r\n', '$-1\r\n', '$1\r\nv\r\n', '$1\r\nv\r\n'])
    expect(await stat('pinned_clients')).toBe(0)
    // Back on shared connections, its reads are cached again.
    const hits = await stat('hits')
    c.write(encode('GET', 'shared-again'))
    expect(String((await c.replies(1))[0])).toBe('$1\r\nv\r\n')
    expect(await stat('hits')).toBe(hits + 1)
    c.close()
  })
})

describe('protocol errors', () => {
  for (const [seq, error] of [
    ['\x00', 'too big inline request'],
    ['*\x00', 'too big mbulk count string'],
    ['$\x00', 'too big inline request'],
  ] as const) {
    it(`answers ${JSON.stringify(seq)} followed by endless data with Redis's error, then closes: the sender is not left blocked`, async () => {
      const socket = connect(s.port, '127.0.0.1')
      await new Promise<void>((resolve) => socket.once('connect', resolve))
      let received = ''
      socket.on('data', (b: Buffer) => (received += b.toString('latin1')))
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
      socket.on('error', () => undefined)
      socket.write(Buffer.from(seq, 'latin1'))
      const payload = Buffer.from('A'.repeat(1024) + '\n')
      const deadline = Date.now() + 10_000
      let writing = true
      void closed.then(() => (writing = false))
      while (writing && Date.now() < deadline) {
        if (!socket.write(payload)) await Promise.race([new Promise((r) => socket.once('drain', r)), closed, sleep(200)])
      }
      await closed
      expect(received).toBe(`-ERR Protocol error: ${error}\r\n`)
    })
  }

  it('answers the commands before a protocol error, then the error, then closes', async () => {
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('SET', 'before', '1'), encode('GET', 'before'), Buffer.from('*1\r\nfoo\r\n')]))
    expect((await c.replies(3)).map(String)).toEqual(['+OK\r\n', '$1\r\n1\r\n', "-ERR Protocol error: expected '$', got 'f'\r\n"])
    await c.waitClosed()
  })

  it('does the same on a dedicated connection', async () => {
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('CLIENT', 'ID'), encode('PING'), Buffer.from('*2\r\n$3\r\nGET\r\n$-10\r\n')]))
    const r = (await c.replies(3)).map(String)
    expect(r[0]).toMatch(/^:\d+\r\n$/)
    expect(r.slice(1)).toEqual(['+PONG\r\n', '-ERR Protocol error: invalid bulk length\r\n'])
    await c.waitClosed()
  })
})

describe('AUTH', () => {
  it('means what it means to Redis: AUTH with a password Redis does not have is an error', async () => {
    const direct = String(await rawCommands(s.redis.port, ['AUTH', 'wrongpw']))
    expect(direct).toMatch(/^-ERR AUTH <password> called without any password configured/)
    expect(String(await rawCommands(s.port, ['AUTH', 'wrongpw'], ['PING']))).toBe(direct + '+PONG\r\n')
    // The two-argument form is accepted by a user without a password, as Redis accepts it.
    expect(String(await rawCommands(s.port, ['AUTH', 'default', 'anything'], ['PING']))).toBe('+OK\r\n+PONG\r\n')
  })
})
