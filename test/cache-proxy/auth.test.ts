// HELLO with AUTH and ACL users through the proxy, against a Redis that requires a password.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { encode, RawClient, startStack, type Stack } from './helpers.js'

let s: Stack
beforeAll(async () => {
  s = await startStack({ password: 'secret' })
  await s.direct.call('ACL', 'SETUSER', 'alice', 'on', '>alicepw', '~alice:*', '+@all')
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
