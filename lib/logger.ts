import pino, { type Logger, type DestinationStream } from 'pino'
import type { Config } from './config.js'

export type { Logger }

/** The process logger: JSON lines, secrets redacted. */
export function createLogger(
  config: Pick<Config, 'logLevel'>,
  bindings: Record<string, unknown> = {},
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: config.logLevel,
      base: bindings,
      redact: {
        paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization', 'client_secret', '*.client_secret'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ sync: false }),
  )
}
