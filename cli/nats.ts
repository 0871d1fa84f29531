// `flowgate nats setup <dir>` and `flowgate nats nsc`: the locked-down bus for a deployment, from the
// same role list `flowgate start` uses (lib/bus.ts).
import { resolve } from 'node:path'
import { BUS_ROLES } from '../lib/bus.js'
import { ensureRoleKeys, renderNscCommands, renderServerConfig, seedFile } from './nats-config.js'
import { writeFileSync } from 'node:fs'

export const NATS_HELP = `  nats setup <dir> [--listen host:port] [--store <dir>]   NKeys per role and a locked-down nats-server.conf in <dir>
  nats nsc [account]             nsc commands giving each role the same permissions in an operator/JWT setup`

/** Runs one `nats` subcommand; resolves with the exit code. */
export function runNatsCommand(args: string[], print: (line: string) => void): number {
  const [sub, ...rest] = args
  if (sub === 'nsc' && rest.length <= 1) {
    print(renderNscCommands(rest[0]))
    return 0
  }
  if (sub !== 'setup' || rest[0] === undefined || rest[0].startsWith('--')) {
    print(`usage:\n${NATS_HELP}`)
    return 2
  }
  const dir = resolve(rest[0])
  const flag = (name: string, fallback: string) => {
    const i = rest.indexOf(name)
    return i === -1 ? fallback : (rest[i + 1] ?? fallback)
  }
  const listen = flag('--listen', '0.0.0.0:4222')
  const storeDir = resolve(flag('--store', resolve(dir, 'jetstream')))
  const keys = ensureRoleKeys(dir)
  const conf = resolve(dir, 'nats-server.conf')
  writeFileSync(conf, renderServerConfig(keys, { listen, storeDir }), { mode: 0o600 })
  print(`wrote ${conf} and one NKey seed per role in ${dir} (existing seeds are kept)`)
  print(`run:  nats-server -c ${conf}`)
  print('then start each process with its own seed:')
  for (const role of BUS_ROLES) print(`  ${role.padEnd(10)} NATS_NKEY_SEED=${seedFile(dir, role)}`)
  print('TLS: add a tls { cert_file, key_file } block to the config, use tls:// in NATS_URL and set NATS_TLS_CA.')
  return 0
}
