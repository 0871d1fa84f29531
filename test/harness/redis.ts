// A real redis-server for one test file: random port, own temp dir, no persistence; stop, kill
// and restart for fault tests.
import { freePort, requireBinary, startRestartable, tempDir } from './process.js'

export interface RedisServer {
  url: string
  port: number
  /** SIGKILL: Redis vanishes mid-traffic; `restart()` brings an empty one back on the same port. */
  kill(): Promise<void>
  restart(): Promise<void>
  stop(): Promise<void>
}

export async function startRedis(opts: { args?: string[]; port?: number } = {}): Promise<RedisServer> {
  const bin = requireBinary('redis-server', ['/usr/bin/redis-server'], 'apt-get install redis-server')
  const port = opts.port ?? (await freePort())
  const dir = tempDir('redis')
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--enable-debug-command', 'yes', ...(opts.args ?? [])]
  const server = await startRestartable({ name: 'redis-server', bin, args, dir, port })
  return { ...server, url: `redis://127.0.0.1:${port}` }
}
