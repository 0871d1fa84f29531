import { connect, type NatsConnection } from 'nats'
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
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') {
        log.warn({ nats: s.type, server: String(s.data) }, `NATS ${s.type}`)
      }
    }
  })()
  return nc
}

/** A message body as UTF-8 text, without copying; Buffer decodes short bodies faster than nats.js's TextDecoder (`msg.string()`). */
export function bodyText(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')
}
