// A real nats-server with JetStream for one test file: random port, own temp store dir.
import { join } from 'node:path'
import { freePort, requireBinary, startRestartable, tempDir } from './process.js'

export interface NatsServer {
  url: string
  port: number
  /** Stops the server but keeps its store, so `restart()` brings the same JetStream back. */
  pause(): Promise<void>
  restart(): Promise<void>
  stop(): Promise<void>
}

export async function startNats(opts: { maxPayload?: number } = {}): Promise<NatsServer> {
  const bin = requireBinary('nats-server', ['/usr/sbin/nats-server'], 'apt-get install nats-server')
  const port = await freePort()
  const dir = tempDir('nats')
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'js')]
  if (opts.maxPayload) {
    const { writeFileSync } = await import('node:fs')
    const conf = join(dir, 'nats.conf')
    writeFileSync(conf, `max_payload: ${opts.maxPayload}\n`)
    args.push('-c', conf)
  }
  const server = await startRestartable({ name: 'nats-server', bin, args, dir, port })
  return { url: `nats://127.0.0.1:${port}`, port, pause: server.kill, restart: server.restart, stop: server.stop }
}
