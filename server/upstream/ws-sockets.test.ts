import { describe, expect, it } from 'vitest'
import { WebSocketRegistry, type OpenSocket } from './ws-sockets.js'

const fakeSocket = (upstream: string): OpenSocket & { codes: number[] } => {
  const codes: number[] = []
  let done!: () => void
  const closed = new Promise<void>((resolve) => (done = resolve))
  return { upstream, codes, closed, bufferedAmount: () => 10, takeBytes: () => ({ in: 0, out: 0 }), close: (code) => (codes.push(code), done()) }
}

describe('WebSocket registry', () => {
  it('bounds places per client (429) and per gateway (503), and gives them back', () => {
    const r = new WebSocketRegistry({ maxSockets: 3, maxPerClient: 2 })
    expect(r.admit('a')).toBeUndefined()
    expect(r.admit('a')).toBeUndefined()
    expect(r.admit('a')).toMatchObject({ status: 429, headers: { 'retry-after': '1' } })
    expect(r.admit('b')).toBeUndefined()
    expect(r.admit('c')).toMatchObject({ status: 503 })
    r.release('a')
    expect(r.admit('c')).toBeUndefined()
  })

  it('counts open sockets per upstream and closes them all with 1001 on shutdown, refusing new ones', async () => {
    const r = new WebSocketRegistry({ maxSockets: 10, maxPerClient: 10 })
    const s1 = fakeSocket('chat')
    const s2 = fakeSocket('chat')
    r.add(s1)
    r.add(s2)
    expect(r.byUpstream().get('chat')).toBe(2)
    expect(r.bufferedBytes()).toBe(20)
    await r.close(1000)
    expect([s1.codes, s2.codes]).toEqual([[1001], [1001]])
    expect(r.admit('x')).toMatchObject({ status: 503, message: 'The gateway is shutting down' })
    r.delete(s1)
    r.delete(s2)
    r.delete(s2)
    expect(r.byUpstream().size).toBe(0)
  })

  it('stops waiting at its deadline when a socket does not close', async () => {
    const r = new WebSocketRegistry({ maxSockets: 10, maxPerClient: 10 })
    r.add({ upstream: 'x', closed: new Promise(() => {}), bufferedAmount: () => 0, takeBytes: () => ({ in: 0, out: 0 }), close: () => {} })
    const t0 = Date.now()
    await r.close(50)
    expect(Date.now() - t0).toBeLessThan(1000)
  })
})
