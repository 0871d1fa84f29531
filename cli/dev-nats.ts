// The bus for `flowgate start` on a developer machine: the NATS at NATS_URL when set, or a locked-down
// nats-server of its own (when one is installed), or how to get one.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import type { BusRole } from '../lib/bus.js'
import type { Config } from '../lib/config.js'
import { natsServers } from '../lib/nats.js'
import { freePort, portOpen } from '../lib/net.js'
import { ensureRoleKeys, renderServerConfig, seedFile } from './nats-config.js'

function findBinary(name: string): string | undefined {
  for (const candidate of [name, `/usr/sbin/${name}`, `/usr/local/bin/${name}`]) {
    const r = spawnSync('sh', ['-c', `command -v ${candidate}`], { encoding: 'utf8' })
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim()
  }
  return undefined
}

export class NatsMissingError extends Error {}

const DEFAULT_PORT = 4222

/** Where `flowgate start` keeps its own bus: the server's config, JetStream's store, the role keys, and how to reach it. */
export function busDir(config: Pick<Config, 'dataDir'>) {
  const dir = resolve(config.dataDir, 'nats')
  return { dir, keys: join(dir, 'keys'), store: join(dir, 'jetstream'), conf: join(dir, 'nats-server.conf'), state: join(dir, 'bus.json') }
}

export interface LocalBus {
  url: string
  /** The role keys' directory. */
  keys: string
  stop(): void
}

/**
 * For `flowgate start`. With NATS_URL set, the processes connect there as configured (nothing is
 * started). Without it, a nats-server of its own: JetStream on, data and keys under DATA_DIR, one
 * NKey user per role with only the permissions that role needs, so what a newcomer starts is locked
 * down, not open. It listens on 127.0.0.1:LOCAL_NATS_PORT (4222), or on a free port when that one is taken.
 */
export async function startLocalBus(config: Config, say: (line: string) => void): Promise<LocalBus | undefined> {
  if (config.natsUrl !== undefined) {
    const first = new URL(natsServers(config)[0]!)
    if (!(await portOpen(Number(first.port || DEFAULT_PORT), first.hostname))) {
      say(`NATS is not reachable at ${config.natsUrl}: waiting for it. (Unset NATS_URL to let flowgate start run its own, or: docker compose -f docker-compose.dev.yaml up -d)`)
    }
    return undefined
  }
  const bin = findBinary('nats-server')
  if (!bin) {
    throw new NatsMissingError(
      'No NATS_URL is set and no nats-server binary is installed.\n' +
        'Fix: apt-get install nats-server (or docker compose -f docker-compose.dev.yaml up -d and NATS_URL=nats://127.0.0.1:4222), then npm start again',
    )
  }
  const paths = busDir(config)
  const host = '127.0.0.1'
  const wanted = config.localNatsPort
  const port = wanted === 0 || (await portOpen(wanted, host)) ? await freePort() : wanted
  const keys = ensureRoleKeys(paths.keys)
  writeFileSync(paths.conf, renderServerConfig(keys, { listen: `${host}:${port}`, storeDir: paths.store }), { mode: 0o600 })
  const child = spawn(bin, ['-c', paths.conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)))
  const url = `nats://${host}:${port}`
  const stop = () => {
    rmSync(paths.state, { force: true })
    child.kill('SIGTERM')
  }
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new NatsMissingError(`nats-server exited at start: ${stderr}`)
    if (await portOpen(port, host)) {
      writeFileSync(paths.state, JSON.stringify({ url, pid: child.pid }), { mode: 0o600 })
      const operator = relative(process.cwd(), seedFile(paths.keys, 'operator')) || seedFile(paths.keys, 'operator')
      say(`NATS: started ${bin} on ${url}, locked down: one NKey user per role (keys in ${relative(process.cwd(), paths.keys) || paths.keys})`)
      say(`  watch it read-only with the nats CLI:  nats --server ${url} --nkey ${operator} sub 'gateway.>'`)
      return { url, keys: paths.keys, stop }
    }
    // nats-server takes some tens of milliseconds to listen: a short poll, so the start does not wait longer.
    await new Promise((r) => setTimeout(r, 15))
  }
  child.kill('SIGKILL')
  throw new NatsMissingError(`nats-server did not accept connections within 10 s: ${stderr}`)
}

/**
 * The settings a process of `role` connects with: NATS_URL and the NATS_* credentials as given; with
 * NATS_URL unset and a bus started by `flowgate start` in this DATA_DIR (still running), that bus with
 * the role's key; else the settings as they are (nats://127.0.0.1:4222, no credentials).
 */
export function busConfig(config: Config, role: BusRole, bus?: LocalBus): Config {
  if (config.natsUrl !== undefined) return config
  const local = bus ?? runningLocalBus(config)
  if (local === undefined) return config
  return Object.freeze({
    ...config,
    natsUrl: local.url,
    natsNkeySeed: seedFile(local.keys, role),
    natsCreds: undefined,
    natsUser: undefined,
    natsPassword: undefined,
    natsToken: undefined,
  })
}

function runningLocalBus(config: Config): LocalBus | undefined {
  const paths = busDir(config)
  let state: { url?: unknown; pid?: unknown }
  try {
    state = JSON.parse(readFileSync(paths.state, 'utf8')) as typeof state
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if (typeof state.url !== 'string' || typeof state.pid !== 'number' || !alive(state.pid)) return undefined
  return { url: state.url, keys: paths.keys, stop: () => {} }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false // no such process: a stale state file from a killed start
  }
}
