import { readFileSync } from 'node:fs'
import { connect, credsAuthenticator, ErrorCode, type ConnectionOptions, type NatsConnection, type Status } from 'nats'
import { inboxPrefix, type BusRole } from './bus.js'
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { nkeyAuthenticator } from './nkey.js'

export type { NatsConnection }

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222'

export type NatsSettings = Pick<
  Config,
  'natsUrl' | 'natsConnectTimeoutMs' | 'natsCreds' | 'natsNkeySeed' | 'natsUser' | 'natsPassword' | 'natsToken' | 'natsTlsCa' | 'natsTlsCert' | 'natsTlsKey'
>

/** The connection could not be made for a reason waiting will not fix (credentials refused, unreadable, TLS). */
export class NatsConnectError extends Error {
  override readonly name = 'NatsConnectError'
}

const FATAL_AT_START = new Set<string>([ErrorCode.AuthorizationViolation, ErrorCode.AuthenticationExpired, ErrorCode.PermissionsViolation])
/** What a server that is not up yet (or not reachable yet) answers: worth waiting for. */
const NOT_UP_YET = new Set<string>([ErrorCode.ConnectionRefused, ErrorCode.ConnectionTimeout, ErrorCode.Timeout, 'ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/** The servers to connect to: NATS_URL, or the local default. */
export function natsServers(config: Pick<Config, 'natsUrl'>): string[] {
  return (config.natsUrl ?? DEFAULT_NATS_URL)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}

/** How to authenticate, from the settings the NATS CLI users know (creds file, NKey seed, user/password, token, TLS files). */
export function natsAuthOptions(config: NatsSettings): Partial<ConnectionOptions> {
  const options: Partial<ConnectionOptions> = {}
  if (config.natsCreds !== undefined) options.authenticator = credsAuthenticator(readSecret('NATS_CREDS', config.natsCreds))
  else if (config.natsNkeySeed !== undefined) options.authenticator = seedAuthenticator(nkeySeed(config.natsNkeySeed))
  if (config.natsUser !== undefined) {
    options.user = config.natsUser
    options.pass = config.natsPassword
  }
  if (config.natsToken !== undefined) options.token = config.natsToken
  if (config.natsTlsCa !== undefined || config.natsTlsCert !== undefined) {
    options.tls = {
      ...(config.natsTlsCa !== undefined ? { caFile: config.natsTlsCa } : {}),
      ...(config.natsTlsCert !== undefined ? { certFile: config.natsTlsCert, keyFile: config.natsTlsKey } : {}),
    }
  }
  return options
}

/** An NKey seed given inline (`SU...`) or as a file holding one, as `nats --nkey` takes it. */
function nkeySeed(value: string): Uint8Array {
  const text = NKEY_SEED.test(value.trim()) ? value.trim() : new TextDecoder().decode(readSecret('NATS_NKEY_SEED', value)).trim()
  if (!NKEY_SEED.test(text)) throw new NatsConnectError('NATS_NKEY_SEED: not an NKey user seed (it starts with SU)')
  return new TextEncoder().encode(text)
}
const NKEY_SEED = /^SU[A-Z2-7]{56}$/

function seedAuthenticator(seed: Uint8Array): ReturnType<typeof nkeyAuthenticator> {
  try {
    return nkeyAuthenticator(seed)
  } catch {
    throw new NatsConnectError('NATS_NKEY_SEED: not a valid NKey user seed (its checksum does not match)')
  }
}

function readSecret(variable: string, path: string): Uint8Array {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new NatsConnectError(`${variable}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
}

/**
 * Connects to NATS as one role (its name, and the inbox prefix its permissions allow), reconnecting
 * forever afterwards; status changes are logged. When NATS is not there yet, keeps trying (saying so
 * once): a process started before its bus waits for it. Refused credentials end the start at once.
 */
export async function connectNats(config: NatsSettings, log: Logger, role: BusRole): Promise<NatsConnection> {
  const servers = natsServers(config)
  const options: ConnectionOptions = {
    servers,
    name: `flowgate-${role}`,
    inboxPrefix: inboxPrefix(role),
    timeout: config.natsConnectTimeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    ...natsAuthOptions(config),
  }
  // The first connection is retried here rather than with nats.js's waitOnFirstConnect, which retries
  // everything: a server that is not up yet is waited for, but refused credentials or a certificate
  // that does not verify will not fix themselves, and end the start.
  let nc: NatsConnection | undefined
  let waiting = false
  while (nc === undefined) {
    try {
      nc = await connect(options)
    } catch (err) {
      const e = err as { code?: string; message?: string }
      if (!NOT_UP_YET.has(e.code ?? '')) {
        const what = e.code !== undefined && FATAL_AT_START.has(e.code) ? `refused the credentials of ${role}` : 'could not be connected to'
        throw new NatsConnectError(`NATS at ${servers.join(',')} ${what}: ${e.message ?? String(err)}`)
      }
      if (!waiting) log.warn({ nats: servers.join(','), reason: e.code }, 'waiting for NATS')
      waiting = true
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  connectionState(nc).listen({
    status(s) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.warn({ nats: s.type, server: String(s.data) }, `NATS ${s.type}`)
    },
  })
  return nc
}

export interface ConnectionListener {
  /** The connection dropped (nats.js reconnects by itself). */
  disconnect?(): void
  /** Connected again after a disconnect. */
  reconnect?(): void
  /** Closed for good. */
  closed?(): void
  /** Every status change as nats.js reports it. */
  status?(s: Status): void
}

export interface ConnectionState {
  /** Connected now (not between a disconnect and a reconnect, not closed). */
  readonly up: boolean
  listen(listener: ConnectionListener): void
}

const states = new WeakMap<NatsConnection, ConnectionState>()

/**
 * The state of a connection, watched once however many parts need it (the requester fails calls fast
 * while it is down, the event publisher pauses, the process logs): one status iterator per connection.
 */
export function connectionState(nc: NatsConnection): ConnectionState {
  let state = states.get(nc)
  if (state !== undefined) return state
  const listeners: ConnectionListener[] = []
  let up = !nc.isClosed()
  state = {
    get up() {
      return up && !nc.isClosed()
    },
    listen: (listener) => void listeners.push(listener),
  }
  states.set(nc, state)
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') up = false
      else if (s.type === 'reconnect') up = true
      for (const l of listeners) {
        l.status?.(s)
        if (s.type === 'disconnect') l.disconnect?.()
        else if (s.type === 'reconnect') l.reconnect?.()
      }
    }
  })()
  void nc.closed().then(() => {
    up = false
    for (const l of listeners) l.closed?.()
  })
  return state
}

/** A message body as UTF-8 text, without copying; Buffer decodes short bodies faster than nats.js's TextDecoder (`msg.string()`). */
export function bodyText(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')
}

/** The inbox prefix of a connection (its role's, so its permissions let it read the replies). */
export function inboxOf(nc: NatsConnection): string {
  return (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix || '_INBOX'
}
