import pino, { type Logger, type DestinationStream } from 'pino'
import type { Config } from './config.js'

export type { Logger }

/** The process logger: JSON lines (epoch-ms `time`; pipe through pino-pretty to read), secrets redacted. */
export function createLogger(
  config: Pick<Config, 'logLevel'>,
  bindings: Record<string, unknown> = {},
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: config.logLevel,
      base: bindings,
      // Top-level paths only: wildcard redaction is paid on every line, and no code logs request bodies.
      redact: { paths: ['password', 'token', 'authorization', 'client_secret', 'headers.authorization'], censor: '[redacted]' },
    },
    // Asynchronous, written in 4 KiB batches: one write per many lines, flushed at exit by pino.
    destination ?? pino.destination({ sync: false, minLength: 4096 }),
  )
}
