// Loopback port helpers for the parts that start servers of their own (`flowgate start`'s nats-server,
// the benchmarks, the test harness): a free port, and whether one accepts connections yet.
import { createServer, connect } from 'node:net'

/** A free TCP port on 127.0.0.1 (the OS picks it; it is released at once, so use it soon). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

/** Whether host:port accepts a TCP connection within `timeoutMs`. */
export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port })
    const finish = (ok: boolean) => {
      s.destroy()
      resolve(ok)
    }
    s.setTimeout(timeoutMs, () => finish(false))
    s.once('connect', () => finish(true))
    s.once('error', () => finish(false))
  })
}

/** Waits until the port accepts connections; fails when `exited()` says the process behind it is gone, or after `timeoutMs`. */
export async function waitForPort(port: number, opts: { exited?: () => boolean; timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000)
  for (;;) {
    if (opts.exited?.()) throw new Error(`the process for port ${port} exited early`)
    if (await portOpen(port)) return
    if (Date.now() > deadline) throw new Error(`port ${port} not open in time`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
