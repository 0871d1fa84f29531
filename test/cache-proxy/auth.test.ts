// HELLO with AUTH and ACL users through the proxy, against a Redis that requires a password.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { encode, RawClient, rawCommands, startStack, type Stack } from './helpers.js'

let s: Stack
beforeAll(async () => {
  s = await startStack({ password: 'secret' })
  await s.direct.call('ACL', 'SETUSER', 'alice', 'on', '>alicepw', '~alice:*', '+@all')
  // A user who may not run CLIENT SETNAME (nor CLIENT TRACKING): logging in must need nothing more than AUTH.
  await s.direct.call('ACL', 'SETUSER', 'plain', 'on', '>plainpw', '~*', '+@all', '-client')
})
afterAll(async () => {
  await s?.stop()
})

it('uses the URL credentials for clients that do not authenticate', async () => {
  const r = new Redis(s.port, '127.0.0.1')
  await r.set('plain', 'v')
  expect(await r.get('plain')).toBe('v')
  r.disconnect()
})

it('passes HELLO 3 AUTH through: Redis errors unchanged, a RESP3 map on success', async () => {
  const c = await RawClient.open(s.port)
  c.write(encode('HELLO', '3', 'AUTH', 'default', 'wrong'))
  expect(String((await c.replies(1))[0])).toBe('-WRONGPASS invalid username-password pair or user is disabled.\r\n')
  c.write(encode('HELLO', '3', 'AUTH', 'alice', 'alicepw'))
  const hello = String((await c.replies(1))[0])
  expect(hello.startsWith('%')).toBe(true)
  expect(hello).toContain('proto\r\n:3')
  c.write(Buffer.concat([encode('SET', 'alice:k', 'a'), encode('GET', 'alice:k'), encode('GET', 'plain'), encode('HGETALL', 'alice:nohash')]))
  const r = (await c.replies(4)).map(String)
  expect(r[0]).toBe('+OK\r\n')
  expect(r[1]).toBe('$1\r\na\r\n')
  expect(r[2]).toMatch(/^-NOPERM/)
  expect(r[3]).toBe('%0\r\n')
  c.close()
})

it('AUTH switches user; a wrong password leaves the connection as it was', async () => {
  const c = await RawClient.open(s.port)
  c.write(Buffer.concat([encode('AUTH', 'alice', 'nope'), encode('GET', 'plain'), encode('AUTH', 'alice', 'alicepw'), encode('GET', 'plain')]))
  const r = (await c.replies(4)).map(String)
  expect(r[0]).toMatch(/^-WRONGPASS/)
  expect(r[1]).toBe('$1\r\nv\r\n')
  expect(r[2]).toBe('+OK\r\n')
  expect(r[3]).toMatch(/^-NOPERM/)
  c.close()
})

it('logs in a user whose ACL forbids CLIENT SETNAME and TRACKING: the proxy runs nothing but AUTH for it', async () => {
  await s.direct.call('ACL', 'LOG', 'RESET')
  const c = await RawClient.open(s.port)
  c.write(Buffer.concat([encode('AUTH', 'plain', 'plainpw'), encode('SET', 'p', '1'), encode('GET', 'p'), encode('GET', 'p')]))
  expect((await c.replies(4)).map(String)).toEqual(['+OK\r\n', '+OK\r\n', '$1\r\n1\r\n', '$1\r\n1\r\n'])
  const h = await RawClient.open(s.port)
  h.write(Buffer.concat([encode('HELLO', '3', 'AUTH', 'plain', 'plainpw'), encode('GET', 'p')]))
  const [hello, get] = (await h.replies(2)).map(String)
  expect(hello).toContain('proto\r\n:3')
  expect(get).toBe('$1\r\n1\r\n')
  // Caching needs CLIENT TRACKING, which this user may not run: asked once per identity, then never again.
  const log = (await s.direct.call('ACL', 'LOG')) as unknown[][]
  const objects = log.map((entry) => String(entry[entry.indexOf('object') + 1]))
  expect(objects.filter((o) => o !== 'client|tracking')).toEqual([])
  expect(objects.length).toBeLessThanOrEqual(2)
  // Its own CLIENT SETNAME gets Redis's refusal, as it would directly.
  c.write(encode('CLIENT', 'SETNAME', 'x'))
  expect(String((await c.replies(1))[0])).toMatch(/^-NOPERM/)
  c.close()
  h.close()
})

it('AUTH with a wrong password answers Redis’s error and leaves the client as it was', async () => {
  const direct = await RawClient.open(s.redis.port)
  direct.write(encode('AUTH', 'wrong'))
  const expected = String((await direct.replies(1))[0])
  direct.close()
  expect(expected).toMatch(/^-WRONGPASS/)
  expect(String(await rawCommands(s.port, ['AUTH', 'wrong'], ['GET', 'plain']))).toBe(`${expected}$1\r\nv\r\n`)
})

it('works for ioredis logging in as that user', async () => {
  const r = new Redis(s.port, '127.0.0.1', { username: 'plain', password: 'plainpw', maxRetriesPerRequest: 1 })
  try {
    await r.set('io-plain', 'x')
    expect(await r.get('io-plain')).toBe('x')
    expect(await r.call('ACL', 'WHOAMI')).toBe('plain')
  } finally {
    r.disconnect()
  }
})
