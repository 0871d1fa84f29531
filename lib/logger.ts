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
    // Asynchronous: lines written while a write is in flight go out together in the next one.
    destination ?? pino.destination({ sync: false }),
  )
}
