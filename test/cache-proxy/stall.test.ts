// A Redis that stops answering without closing its connections: commands fail after the reply
// timeout instead of waiting forever, and the proxy reconnects once Redis answers again.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawCommands, startStack, type Stack } from './helpers.js'
import { waitFor } from '../harness/process.js'

let s: Stack
beforeAll(async () => {
  s = await startStack({ policy: 'version: 1\nrules: []\nupstream:\n  replyTimeoutMs: 300\n' })
})
afterAll(async () => {
  await s?.stop()
})

describe('a hung Redis', () => {
  it('fails outstanding commands after upstream.replyTimeoutMs, then recovers', async () => {
    const blocker = new Redis(s.redis.port, '127.0.0.1')
    await blocker.ping()
    const sleeping = blocker.call('DEBUG', 'SLEEP', '2')
    await new Promise((r) => setTimeout(r, 50))
    const t0 = Date.now()
    const reply = String(await rawCommands(s.port, ['SET', 'stalled', 'v']))
    const elapsed = Date.now() - t0
    expect(reply).toMatch(/^-ERR upstream/)
    expect(elapsed).toBeLessThan(1500)
    await sleeping
    blocker.disconnect()
    await waitFor(async () => String(await rawCommands(s.port, ['SET', 'after', 'ok'])) === '+OK\r\n', 5000)
    expect(await s.direct.get('after')).toBe('ok')
  })
})
