// The proxy protects Redis and its own process: administrative commands are refused by default,
// request bytes are bounded per client and in total, a client that leaves gives back its place on
// a dedicated connection, and a tag write that fails is counted.
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../harness/process.js'
import { encode, RawClient, rawCommands, startStack, type Stack } from './helpers.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const statOf = async (port: number, name: string) => Number(new RegExp(`${name}\\r\\n:(\\d+)`).exec(String(await rawCommands(port, ['CACHE.STATS'])))![1])

describe('administrative commands, with the built-in policy', () => {
  let s: Stack
  beforeAll(async () => {
    s = await startStack()
  })
  afterAll(async () => {
    await s?.stop()
  })

  const refused: Array<[string[], string]> = [
    [['CONFIG', 'SET', 'maxmemory', '1'], 'CONFIG SET'],
    [['FLUSHALL'], 'FLUSHALL'],
    [['SHUTDOWN', 'NOSAVE'], 'SHUTDOWN'],
    [['CLIENT', 'KILL', 'TYPE', 'normal'], 'CLIENT KILL'],
    [['REPLICAOF', '127.0.0.1', '1'], 'REPLICAOF'],
    [['SLAVEOF', '127.0.0.1', '1'], 'SLAVEOF'],
    [['DEBUG', 'SLEEP', '1'], 'DEBUG SLEEP'],
    [['MODULE', 'LOAD', '/nonexistent.so'], 'MODULE LOAD'],
    [['ACL', 'SETUSER', 'mallory', 'on', '>x', '+@all'], 'ACL SETUSER'],
    [['MONITOR'], 'MONITOR'],
  ]
  for (const [command, name] of refused) {
    it(`refuses ${name} with a clear error, and Redis never sees it`, async () => {
      expect(String(await rawCommands(s.port, command))).toBe(`-ERR administrative command '${name}' is refused by the cache proxy policy (allowAdmin is off)\r\n`)
    })
  }

  it('left Redis as it was', async () => {
    expect(await s.direct.call('INFO', 'commandstats')).not.toMatch(/cmdstat_(flushall|config|shutdown|debug|module|replicaof|slaveof|monitor|acl)/)
    await s.direct.set('survives', 'yes')
    expect(String(await rawCommands(s.port, ['FLUSHALL']))).toMatch(/^-ERR administrative command 'FLUSHALL'/)
    expect(await s.direct.get('survives')).toBe('yes')
    expect(await s.direct.config('GET', 'maxmemory')).toEqual(['maxmemory', '0'])
    expect(await s.direct.call('ACL', 'USERS')).toEqual(['default'])
  })

  it('refuses them on a dedicated connection too, in order, and aborts a transaction that contains one', async () => {
    await s.direct.set('tx', 'before')
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('MULTI'), encode('SET', 'tx', 'after'), encode('FLUSHALL'), encode('EXEC'), encode('PING')]))
    expect((await c.replies(5)).map(String)).toEqual([
      '+OK\r\n',
      '+QUEUED\r\n',
      "-ERR administrative command 'FLUSHALL' is refused by the cache proxy policy (allowAdmin is off)\r\n",
      '-EXECABORT Transaction discarded because of previous errors.\r\n',
      '+PONG\r\n',
    ])
    c.close()
    expect(await s.direct.get('tx')).toBe('before')
  })

  it('lets ordinary commands through: SCRIPT KILL, FLUSHDB, CONFIG-free reads', async () => {
    expect(String(await rawCommands(s.port, ['SCRIPT', 'KILL']))).toMatch(/^-NOTBUSY/)
    expect(String(await rawCommands(s.port, ['FLUSHDB']))).toBe('+OK\r\n')
    expect(String(await rawCommands(s.port, ['INFO', 'server']))).toContain('redis_version')
  })
})

describe('bounds', () => {
  let s: Stack
  beforeAll(async () => {
    s = await startStack({
      policy: `version: 1
rules:
  - commands: [GET]
    keys: ['*']
tags:
  rules:
    - keys: 'tagged:*'
      tags: [t]
limits:
  maxRequestBytes: 8388608
  maxTotalRequestBytes: 20971520
`,
    })
  })
  afterAll(async () => {
    await s?.stop()
  })

  /** Opens a raw socket and sends the head of a SET whose value is `declared` bytes, then `sent` bytes of it. */
  async function partialSet(key: string, declared: number, sent: number): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
    const socket = connect(s.port, '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    let text = ''
    socket.on('data', (b: Buffer) => (text += b.toString('latin1')))
    socket.on('error', () => undefined)
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.write(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${declared}\r\n`)
    const chunk = Buffer.alloc(256 * 1024, 'v')
    for (let n = 0; n < sent; n += chunk.length) {
      if (!socket.write(chunk.subarray(0, Math.min(chunk.length, sent - n)))) await Promise.race([new Promise((r) => socket.once('drain', r)), closed])
    }
    return { socket, received: () => text, closed }
  }

  it('refuses a request over limits.maxRequestBytes at its header, before buffering it', async () => {
    const before = process.memoryUsage().arrayBuffers
    const clients = await Promise.all([0, 1, 2].map((i) => partialSet(`big${i}`, 150 * 1024 * 1024, 4 * 1024 * 1024)))
    await Promise.all(clients.map((c) => c.closed))
    for (const c of clients) expect(c.received()).toBe('-ERR request too large for the cache proxy (over limits.maxRequestBytes, 8388608 bytes)\r\n')
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024)
    // Nothing held but the CACHE.STATS request being answered.
    expect(await statOf(s.port, 'request_bytes')).toBeLessThan(64)
    expect(String(await rawCommands(s.port, ['PING']))).toBe('+PONG\r\n')
  })

  it('bounds the bytes of all clients together; the client that passes it is closed, the others lose nothing', async () => {
    const before = process.memoryUsage().arrayBuffers
    const six = 6 * 1024 * 1024
    const first = await Promise.all([0, 1, 2].map((i) => partialSet(`part${i}`, 7 * 1024 * 1024, six)))
    await waitFor(async () => (await statOf(s.port, 'request_bytes')) >= 3 * six, 20_000)
    const over = await partialSet('part3', 7 * 1024 * 1024, six)
    await over.closed
    expect(over.received()).toBe("-ERR the cache proxy's request buffers are full (limits.maxTotalRequestBytes, 20971520 bytes)\r\n")
    expect(await statOf(s.port, 'request_bytes')).toBeLessThanOrEqual(20971520)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024)
    // Other clients keep working meanwhile, and the three waiting requests complete intact.
    expect(String(await rawCommands(s.port, ['PING']))).toBe('+PONG\r\n')
    for (const c of first) c.socket.write(Buffer.concat([Buffer.alloc(1024 * 1024, 'v'), Buffer.from('\r\n')]))
    await waitFor(() => first.every((c) => c.received() === '+OK\r\n'))
    for (let i = 0; i < 3; i++) expect(await s.direct.strlen(`part${i}`)).toBe(7 * 1024 * 1024)
    for (const c of first) c.socket.destroy()
    await waitFor(async () => (await statOf(s.port, 'request_bytes')) < 64)
  })

  it('gives back the place on a dedicated connection of every client that leaves, also while it waited for earlier replies', async () => {
    // Redis holds every command for a while: each client leaves with a GET outstanding and a MULTI waiting behind it.
    await s.direct.call('CLIENT', 'PAUSE', '3000', 'ALL')
    try {
      for (let batch = 0; batch < 11; batch++) {
        await Promise.all(
          Array.from({ length: 100 }, async (_, i) => {
            const c = await RawClient.open(s.port)
            c.write(Buffer.concat([encode('GET', `leaver:${batch}:${i}`), encode('MULTI')]))
            await sleep(1)
            c.close()
          }),
        )
      }
    } finally {
      await s.direct.call('CLIENT', 'UNPAUSE')
    }
    // And clients that left while on their dedicated connection (a blocking pop, a subscription).
    await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const c = await RawClient.open(s.port)
        c.write(i % 2 ? encode('BLPOP', 'nothing', '0') : encode('SUBSCRIBE', 'nothing'))
        if (i % 2 === 0) await c.replies(1)
        else await sleep(20)
        c.close()
      }),
    )
    await waitFor(async () => (await statOf(s.port, 'clients')) === 1 && (await statOf(s.port, 'pinned_clients')) === 0)
    const c = await RawClient.open(s.port)
    c.write(Buffer.concat([encode('MULTI'), encode('INCR', 'after-leavers'), encode('EXEC')]))
    expect((await c.replies(3)).map(String)).toEqual(['+OK\r\n', '+QUEUED\r\n', '*1\r\n:1\r\n'])
    c.close()
  }, 60_000)

  it('counts a key that could not join its tag (and logs it), instead of ignoring it', async () => {
    await s.direct.set('flowgate:tag:t', 'not a set')
    const before = await statOf(s.port, 'tag_errors')
    expect(String(await rawCommands(s.port, ['SET', 'tagged:1', 'x']))).toBe('+OK\r\n')
    await waitFor(async () => (await statOf(s.port, 'tag_errors')) === before + 1)
    expect(await s.registry.metrics()).toMatch(new RegExp(`^flowgate_cache_tag_errors_total ${before + 1}$`, 'm'))
    await s.direct.del('flowgate:tag:t')
    expect(String(await rawCommands(s.port, ['SET', 'tagged:2', 'x']))).toBe('+OK\r\n')
    await waitFor(async () => (await s.direct.sismember('flowgate:tag:t', 'tagged:2')) === 1)
    expect(await statOf(s.port, 'tag_errors')).toBe(before + 1)
  })
})
