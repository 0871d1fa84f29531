// A real redis-server for one test file: random port, own temp dir, no persistence; stop, kill
// and restart for fault tests.
import { freePort, portOpen, requireBinary, startProcess, tempDir, type ServerProcess } from './process.js'

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
  const launch = () => startProcess({ name: 'redis-server', bin, args, dir, ready: () => portOpen(port), removeDir: false })
  let proc: ServerProcess | undefined = await launch()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async kill() {
      await proc?.kill()
      proc = undefined
    },
    async restart() {
      if (!proc) proc = await launch()
    },
    async stop() {
      await proc?.stop()
      proc = undefined
      const { rmSync } = await import('node:fs')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
