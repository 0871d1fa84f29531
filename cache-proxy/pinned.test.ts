import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { Dedicated } from './pinned.js'
import { encodeCommand } from './resp.js'

let server: Server | undefined
const sockets: Socket[] = []
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy()
  await new Promise((r) => (server ? server.close(r) : r(undefined)))
  server = undefined
})

/** A TCP server that accepts connections and answers with `answer` (nothing when undefined). */
async function fakeRedis(answer?: (data: Buffer) => string): Promise<number> {
  server = createServer((socket) => {
    sockets.push(socket)
    socket.on('data', (d: Buffer) => {
      if (answer) socket.write(answer(d))
    })
  })
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r))
  return (server.address() as { port: number }).port
}

const open = (port: number, init: Buffer[], setupTimeoutMs = 5000) =>
  new Dedicated({ host: '127.0.0.1', port, init, connectTimeoutMs: 1000, setupTimeoutMs, markerToken: 'abc' })

const setUp = (d: Dedicated) => new Promise<Buffer | null>((resolve) => d.whenSetUp(resolve))

describe('Dedicated', () => {
  it('fails its setup when the server accepts but never answers', async () => {
    const port = await fakeRedis()
    const t0 = Date.now()
    const error = await setUp(open(port, [encodeCommand(['SELECT', '1'])], 150))
    expect(String(error)).toBe('-ERR upstream unavailable (flowgate cache proxy): no answer to the connection setup within 150 ms\r\n')
    expect(Date.now() - t0).toBeLessThan(1000)
  })

  it('passes the server’s refusal of a setup command on as the error', async () => {
    const port = await fakeRedis(() => '-BUSY Redis is busy running a script.\r\n')
    expect(String(await setUp(open(port, [encodeCommand(['SELECT', '1'])])))).toBe('-BUSY Redis is busy running a script.\r\n')
  })

  it('is ready at once when there is nothing to set up, and fails when nothing listens', async () => {
    const port = await fakeRedis()
    const d = open(port, [])
    expect(await setUp(d)).toBeNull()
    d.close()
    for (const s of sockets.splice(0)) s.destroy()
    await new Promise<void>((r) => server!.close(() => r()))
    server = undefined
    expect(String(await setUp(open(port, [])))).toMatch(/^-ERR upstream unavailable \(flowgate cache proxy\): connect ECONNREFUSED/)
  })
})
