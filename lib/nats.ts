import { connect, type NatsConnection, type Status } from 'nats'
import type { Config } from './config.js'
import type { Logger } from './logger.js'

export type { NatsConnection }

/**
 * Connects to NATS, reconnecting forever afterwards; status changes are logged. When NATS is not
 * there yet, keeps trying (saying so once) instead of exiting: a process started before its bus waits for it.
 */
export async function connectNats(
  config: Pick<Config, 'natsUrl' | 'natsConnectTimeoutMs'>,
  log: Logger,
  name: string,
): Promise<NatsConnection> {
  const waiting = setTimeout(() => log.warn({ nats: config.natsUrl }, 'waiting for NATS'), config.natsConnectTimeoutMs)
  const nc = await connect({
    servers: config.natsUrl.split(',').map((s) => s.trim()),
    name,
    timeout: config.natsConnectTimeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    waitOnFirstConnect: true,
  }).finally(() => clearTimeout(waiting))
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
