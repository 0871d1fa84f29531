// The enforced blocklist: every gateway watches the KV bucket the subscriber writes and keeps the
// live blocks in a map, so the check on the hot path is one lookup. Writes go through the shared
// store (lib/blocklist.ts); the bucket's change feed brings them back here, on every gateway.
import type { KvEntry, NatsConnection } from 'nats'
import { addressOfBlockKey, createBlocklistStore, readBlockEntry } from '../../lib/blocklist.js'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { openBlocklistBucket, watchBucketInBackground } from '../../lib/streams.js'
import type { BlockEntry } from '../../schemas/events.js'

const MAX_BLOCKS = 100_000

export interface Blocklist {
  /** Whether the address key is blocked now. */
  isBlocked(address: string): boolean
  /** The live block of an address key, if any. */
  get(address: string): BlockEntry | undefined
  /** Live blocks this gateway knows of. */
  list(): BlockEntry[]
  /** Removes a block on every gateway; false when there was none. */
  lift(address: string): Promise<boolean>
  /** True once the initial values were read. */
  ready(): boolean
  close(): Promise<void>
}

/** Watches the blocklist bucket in the background (the gateway starts without JetStream and catches up). */
export function createBlocklist(nc: NatsConnection, config: Pick<Config, 'autoBlockTtlSec'>, log: Logger, now: () => number = Date.now): Blocklist {
  const live = new Map<string, BlockEntry>()
  const store = createBlocklistStore(nc, config)
  let initialized = false
  const stopWatch = watchBucketInBackground('blocklist', () => openBlocklistBucket(nc, config), (e) => apply(e), log, () => (initialized = true))

  function apply(e: KvEntry) {
    if (e.operation === 'DEL' || e.operation === 'PURGE') {
      const address = addressOfBlockKey(e.key)
      if (address) live.delete(address)
      return
    }
    const read = readBlockEntry(e.key, e.value)
    if (!read.ok) {
      log.warn({ key: e.key.slice(0, 80), reason: read.reason }, 'blocklist entry ignored')
      return
    }
    const entry = read.value
    if (entry.expiresAt <= now()) {
      live.delete(entry.address)
      return
    }
    if (live.size >= MAX_BLOCKS && !live.has(entry.address)) {
      sweep()
      if (live.size >= MAX_BLOCKS) {
        log.error({ max: MAX_BLOCKS }, 'blocklist full; new block not enforced by this gateway')
        return
      }
    }
    live.set(entry.address, entry)
  }

  function sweep() {
    const t = now()
    for (const [address, entry] of live) if (entry.expiresAt <= t) live.delete(address)
  }

  function get(address: string): BlockEntry | undefined {
    if (live.size === 0) return undefined
    const entry = live.get(address)
    if (entry === undefined) return undefined
    if (entry.expiresAt > now()) return entry
    live.delete(address)
    return undefined
  }

  return {
    isBlocked: (address) => get(address) !== undefined,
    get,
    list() {
      sweep()
      return [...live.values()]
    },
    async lift(address) {
      const existed = await store.lift(address)
      live.delete(address)
      return existed
    },
    ready: () => initialized,
    async close() {
      stopWatch()
    },
  }
}
