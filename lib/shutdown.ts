import type { Logger } from './logger.js'

/** One running instance of a micro service on the bus (the `id` of its $SRV.INFO answer). */
export interface Instance {
  service: string
  id: string
}

/** A started process part (gateway, worker, ...): what to print, and how to stop it. */
export interface Running {
  describe: string
  /** The micro-service instances it serves on the bus (a gateway in the same process asks them directly). */
  instances?: readonly Instance[]
  /** Where it answers HTTP, as bound (PORT=0 takes a free port): the gateway's. */
  url?: string
  /** Resolves true when everything closed within the deadline. */
  close(): Promise<boolean>
}

export type Closer = { name: string; close: () => Promise<unknown> | unknown }

/**
 * Runs closers in reverse order of registration, each bounded by what is left of one deadline,
 * so a stuck dependency cannot hold the process. Resolves true when everything closed in time.
 */
export async function closeAll(closers: Closer[], deadlineMs: number, log: Logger): Promise<boolean> {
  const end = Date.now() + deadlineMs
  let clean = true
  for (const c of [...closers].reverse()) {
    const left = end - Date.now()
    if (left <= 0) {
      log.error({ closer: c.name }, 'shutdown deadline passed before close')
      clean = false
      continue
    }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, left, 'timeout')))
    try {
      const r = await Promise.race([Promise.resolve(c.close()), timeout])
      if (r === 'timeout') {
        log.error({ closer: c.name }, 'close timed out')
        clean = false
      }
    } catch (err) {
      log.error({ err, closer: c.name }, 'close failed')
      clean = false
    } finally {
      clearTimeout(timer)
    }
  }
  return clean
}
