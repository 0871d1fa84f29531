import pino, { type Logger, type DestinationStream } from 'pino'
import type { Config } from './config.js'

export type { Logger }

/** Lines are written in batches of at least this many bytes (or every FLUSH_MS, whichever is first). */
const BATCH_BYTES = 4096
const FLUSH_MS = 200

/**
 * Where the process's lines go: asynchronous and batched. Every write hands a buffer to libuv's
 * thread pool and wakes a thread; one write per line cost the flow worker ~17% of its CPU at
 * load, so lines are gathered to 4 KB. A timer flushes a quiet process's lines within 200 ms,
 * and pino flushes what is left synchronously when the process exits; only a SIGKILL loses the
 * last batch.
 */
export function logDestination(dest: string | number = 1): ReturnType<typeof pino.destination> {
  const stream = pino.destination({ dest, sync: false, minLength: BATCH_BYTES })
  const timer: NodeJS.Timeout = setInterval(() => {
    try {
      stream.flush()
    } catch {
      clearInterval(timer) // destroyed: nothing more will be written
    }
  }, FLUSH_MS).unref()
  stream.on('close', () => clearInterval(timer))
  return stream
}

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
    destination ?? logDestination(),
  )
}
