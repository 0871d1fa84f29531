// For `flowgate start` on a developer machine: use the NATS at NATS_URL, or start a local
// nats-server (JetStream on, data under DATA_DIR) when one is installed, or say how to get one.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { join, resolve } from 'node:path'
import type { Config } from '../lib/config.js'

export function reachable(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((done) => {
    const s = tcpConnect({ host, port })
    const finish = (ok: boolean) => {
      s.destroy()
      done(ok)
    }
    s.setTimeout(timeoutMs, () => finish(false))
    s.once('connect', () => finish(true))
    s.once('error', () => finish(false))
  })
}

function findBinary(name: string): string | undefined {
  for (const candidate of [name, `/usr/sbin/${name}`, `/usr/local/bin/${name}`]) {
    const r = spawnSync('sh', ['-c', `command -v ${candidate}`], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim()
  }
  return undefined
}

export class NatsMissingError extends Error {}

/** The child we started (to stop last), or undefined when NATS was already there. */
export async function ensureNats(config: Config, say: (line: string) => void): Promise<ChildProcess | undefined> {
  const first = new URL(config.natsUrl.split(',')[0]!.trim())
  const host = first.hostname || '127.0.0.1'
  const port = Number(first.port || 4222)
  if (await reachable(host, port)) return undefined
  const bin = findBinary('nats-server')
  const local = host === '127.0.0.1' || host === 'localhost'
  if (!bin || !local) {
    throw new NatsMissingError(
      `NATS is not reachable at ${config.natsUrl}${bin ? '' : ' and no nats-server binary is installed'}.\n` +
        `Fix: docker compose -f docker-compose.dev.yaml up -d   (or install nats-server, e.g. apt-get install nats-server, and run npm start again)`,
    )
  }
  const dir = resolve(config.dataDir, 'nats')
  mkdirSync(dir, { recursive: true })
  const child = spawn(bin, ['-a', host === 'localhost' ? '127.0.0.1' : host, '-p', String(port), '-js', '-sd', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)))
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new NatsMissingError(`nats-server exited at start: ${stderr}`)
    if (await reachable(host, port)) {
      say(`NATS was not running: started ${bin} on ${host}:${port} with JetStream (data in ${join(config.dataDir, 'nats')})`)
      return child
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  child.kill('SIGKILL')
  throw new NatsMissingError(`nats-server did not accept connections within 10 s: ${stderr}`)
}
