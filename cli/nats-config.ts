// A locked-down nats-server for Flowgate: one NKey user per role (lib/bus.ts), each allowed exactly
// the subjects it needs. `flowgate start` runs its own server with it; `flowgate nats setup <dir>`
// writes the same for a deployment; deploy/nats/nats-server.conf is its rendering with example keys.
// NKeys (Ed25519, no shared secret on the server) rather than passwords: the server holds only
// public keys, and each process proves its role by signing the server's nonce with its seed.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { nkeys } from 'nats'
import { nkeyUser } from '../lib/nkey.js'
import { BUS_ROLES, permissionsOf, type BusRole } from '../lib/bus.js'

export interface ServerOptions {
  /** `host:port` the server listens on. */
  listen: string
  /** JetStream's store directory. */
  storeDir: string
  /** Largest message payload in bytes (the server's default is 1 MiB). */
  maxPayload?: number
}

export type RoleKeys = Record<BusRole, string>

const quote = (s: string) => JSON.stringify(s)
const list = (items: readonly string[], indent: string) => `[\n${items.map((i) => `${indent}  ${quote(i)}`).join(',\n')}\n${indent}]`

/** The server configuration: the listen address, JetStream, and one user per role with its permissions. */
export function renderServerConfig(keys: RoleKeys, options: ServerOptions): string {
  const users = BUS_ROLES.map((role) => {
    const p = permissionsOf(role)
    const indent = '        '
    return [
      `    # ${role}: ${p.purpose}`,
      `    {`,
      `      nkey: ${keys[role]}`,
      `      permissions: {`,
      `        publish: { allow: ${list(p.publish, indent)} }`,
      `        subscribe: { allow: ${list(p.subscribe, indent)} }`,
      ...(p.allowResponses ? [`        allow_responses: true`] : []),
      `      }`,
      `    }`,
    ].join('\n')
  })
  return [
    '# Flowgate on NATS: every process authenticates with the NKey of its role and may publish and',
    '# subscribe only where its role needs to (rendered from lib/bus.ts; see README, "The bus").',
    `listen: ${quote(options.listen)}`,
    ...(options.maxPayload ? [`max_payload: ${options.maxPayload}`] : []),
    `jetstream { store_dir: ${quote(options.storeDir)} }`,
    'authorization {',
    '  users = [',
    users.join('\n'),
    '  ]',
    '}',
    '',
  ].join('\n')
}

/** nsc commands giving each role the same permissions as a user JWT in an operator/account setup (single-quoted for a POSIX shell: the subjects hold `$`). */
export function renderNscCommands(account = 'FLOWGATE'): string {
  return BUS_ROLES.map((role) => {
    const p = permissionsOf(role)
    const flags = [
      `--account ${account}`,
      `--name ${role}`,
      `--allow-pub '${p.publish.join(',')}'`,
      `--allow-sub '${p.subscribe.join(',')}'`,
      ...(p.allowResponses ? ['--allow-pub-response'] : []),
    ]
    return `nsc add user ${flags.join(' ')}`
  }).join('\n')
}

/** The seed file of a role's key in a key directory. */
export const seedFile = (dir: string, role: BusRole) => join(dir, `${role}.nk`)

/**
 * Each role's NKey in `dir`: read when its seed file exists, made (and written, readable by the owner
 * only) when not. Returns the public keys, which are all the server needs.
 */
export function ensureRoleKeys(dir: string): RoleKeys {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const keys = {} as RoleKeys
  for (const role of BUS_ROLES) {
    const file = seedFile(dir, role)
    let seed: Uint8Array
    if (existsSync(file)) {
      seed = new TextEncoder().encode(readFileSync(file, 'utf8').trim())
    } else {
      seed = nkeys.createUser().getSeed()
      writeFileSync(file, `${new TextDecoder().decode(seed)}\n`, { mode: 0o600 })
    }
    chmodSync(file, 0o600)
    keys[role] = nkeyUser(seed).publicKey
  }
  return keys
}
