// Shared setup of the cache proxy integration tests: a real redis-server, the proxy in front of
// it, and a raw RESP socket client that sees reply bytes exactly as the proxy wrote them.
import { writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import { start, type RunningCacheProxy } from '../../cache-proxy/main.js'
import { scanReply } from '../../cache-proxy/resp.js'
import { parseConfig } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { tempDir, waitFor } from '../harness/process.js'
import { startRedis, type RedisServer } from '../harness/redis.js'

export interface Stack {
  redis: RedisServer
  proxy: RunningCacheProxy
  port: number
  direct: Redis
  policyFile: string | undefined
  registry: Registry
  stop(): Promise<void>
}

export async function startStack(opts: { policy?: string; password?: string; cacheMaxBytes?: number } = {}): Promise<Stack> {
  const redis = await startRedis({ args: opts.password ? ['--requirepass', opts.password] : [] })
  let policyFile: string | undefined
  if (opts.policy !== undefined) {
    policyFile = join(tempDir('policy'), 'policy.yaml')
    writeFileSync(policyFile, opts.policy)
  }
  const config = parseConfig({
    redisUrl: opts.password ? `redis://:${opts.password}@127.0.0.1:${redis.port}` : redis.url,
    cacheProxyPort: 0,
    logLevel: 'silent',
    cachePolicyFile: policyFile,
    cacheMaxBytes: opts.cacheMaxBytes ?? 64 * 1024 * 1024,
  })
  const registry = new Registry()
  const proxy = await start(config, createLogger(config), { policyReloadIntervalMs: 50, registry })
  const direct = new Redis(redis.port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1, password: opts.password })
  direct.on('error', () => undefined)
  await waitFor(async () => (await rawCommands(proxy.address.port, ['CACHE.STATS'])).toString().includes('tracking\r\n:1'))
  return {
    redis,
    proxy,
    port: proxy.address.port,
    direct,
    policyFile,
    registry,
    async stop() {
      direct.disconnect()
      await proxy.close()
      await redis.stop()
    },
  }
}

/** A raw RESP connection: write bytes, read back N whole replies as raw bytes. */
export class RawClient {
  private buf = Buffer.alloc(0)
  private waiters: Array<() => void> = []
  closed = false
  constructor(readonly socket: Socket) {
    socket.on('data', (b: Buffer) => {
      this.buf = Buffer.concat([this.buf, b])
      for (const w of this.waiters.splice(0)) w()
    })
    socket.on('close', () => {
      this.closed = true
      for (const w of this.waiters.splice(0)) w()
    })
    socket.on('error', () => undefined)
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new RawClient(socket)
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  /** The next n replies, each as its raw bytes. */
  async replies(n: number, timeoutMs = 5000): Promise<Buffer[]> {
    const out: Buffer[] = []
    const end = Date.now() + timeoutMs
    while (out.length < n) {
      const next = scanReply(this.buf, 0, this.buf.length)
      if (next > 0) {
        out.push(this.buf.subarray(0, next))
        this.buf = this.buf.subarray(next)
        continue
      }
      if (this.closed) throw new Error(`connection closed after ${out.length} of ${n} replies`)
      if (Date.now() > end) throw new Error(`timed out after ${out.length} of ${n} replies`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50)
        this.waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    return out
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs)
  }

  close(): void {
    this.socket.destroy()
  }
}

export function encode(...args: Array<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'latin1') : a
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Sends commands on a fresh connection and returns all reply bytes. */
export async function rawCommands(port: number, ...commands: string[][]): Promise<Buffer> {
  const c = await RawClient.open(port)
  try {
    c.write(Buffer.concat(commands.map((cmd) => encode(...cmd))))
    return Buffer.concat(await c.replies(commands.length))
  } finally {
    c.close()
  }
}

/** Calls of one command Redis has executed (INFO commandstats). */
export async function upstreamCalls(direct: Redis, command: string): Promise<number> {
  const info = await direct.info('commandstats')
  const m = new RegExp(`cmdstat_${command.toLowerCase()}:calls=(\\d+)`).exec(info)
  return m ? Number(m[1]) : 0
}
