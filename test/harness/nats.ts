// A real nats-server with JetStream for one test file: random port, own temp store dir. `locked`
// runs it with the configuration `flowgate start` runs (one NKey user per role, lib/bus.ts), keys in
// its temp dir; `tls` adds a certificate made for the test (tls.ts).
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BusRole } from '../../lib/bus.js'
import { ensureRoleKeys, renderServerConfig, seedFile } from '../../cli/nats-config.js'
import { freePort, requireBinary, startRestartable, tempDir } from './process.js'
import { makeCertificates, type Certificates } from './tls.js'

export interface NatsServer {
  url: string
  port: number
  /** Stops the server but keeps its store, so `restart()` brings the same JetStream back. */
  pause(): Promise<void>
  restart(): Promise<void>
  stop(): Promise<void>
}

export interface LockedNatsServer extends NatsServer {
  /** The seed file of a role's NKey (NATS_NKEY_SEED). */
  seed(role: BusRole): string
  /** The config settings a process of `role` connects with. */
  settings(role: BusRole): { natsUrl: string; natsNkeySeed: string; natsTlsCa?: string }
  /** The server's log so far (permission violations show there). */
  log(): string
  certificates?: Certificates
}

export async function startNats(opts: { maxPayload?: number } = {}): Promise<NatsServer> {
  const bin = natsBinary()
  const port = await freePort()
  const dir = tempDir('nats')
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', join(dir, 'js')]
  if (opts.maxPayload) {
    const conf = join(dir, 'nats.conf')
    writeFileSync(conf, `max_payload: ${opts.maxPayload}\n`)
    args.push('-c', conf)
  }
  const server = await startRestartable({ name: 'nats-server', bin, args, dir, port })
  return { url: `nats://127.0.0.1:${port}`, port, pause: server.kill, restart: server.restart, stop: server.stop }
}

/** nats-server with the shipped, locked-down configuration (and TLS when asked). */
export async function startLockedNats(opts: { tls?: boolean } = {}): Promise<LockedNatsServer> {
  const bin = natsBinary()
  const port = await freePort()
  const dir = tempDir('nats-locked')
  const keys = ensureRoleKeys(join(dir, 'keys'))
  const certificates = opts.tls ? makeCertificates(join(dir, 'tls')) : undefined
  const logFile = join(dir, 'nats.log')
  let conf = renderServerConfig(keys, { listen: `127.0.0.1:${port}`, storeDir: join(dir, 'js') })
  conf += `log_file: ${JSON.stringify(logFile)}\n`
  if (certificates) conf += `tls { cert_file: ${JSON.stringify(certificates.serverCert)}\n key_file: ${JSON.stringify(certificates.serverKey)} }\n`
  const confFile = join(dir, 'nats.conf')
  writeFileSync(confFile, conf)
  const server = await startRestartable({ name: 'nats-server', bin, args: ['-c', confFile], dir, port })
  const url = `${certificates ? 'tls' : 'nats'}://127.0.0.1:${port}`
  return {
    url,
    port,
    pause: server.kill,
    restart: server.restart,
    stop: server.stop,
    seed: (role) => seedFile(join(dir, 'keys'), role),
    settings: (role) => ({ natsUrl: url, natsNkeySeed: seedFile(join(dir, 'keys'), role), ...(certificates ? { natsTlsCa: certificates.ca } : {}) }),
    log: () => {
      try {
        return readFileSync(logFile, 'utf8')
      } catch {
        return '' // not written yet
      }
    },
    certificates,
  }
}

function natsBinary(): string {
  return requireBinary('nats-server', ['/usr/sbin/nats-server'], 'apt-get install nats-server')
}
