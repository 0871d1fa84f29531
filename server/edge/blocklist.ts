// The enforced blocklist: every gateway watches the KV bucket the subscriber writes and keeps the
// live blocks in a map, so the check on the hot path is one lookup. nats-server 2.9 has no
// per-message TTL, so each entry carries its own `expiresAt` (checked here) and the bucket's
// max_age removes it from the store later.
import { StringCodec, type KV, type KvEntry, type NatsConnection } from 'nats'
import { openBlocklistBucket, retryInBackground } from '../../events/stream.js'
import type { Config } from '../../lib/config.js'
import type { Logger } from '../../lib/logger.js'
import { decodeBlockEntry, EVENT_VERSION, type BlockEntry } from '../../schemas/events.js'
import { addressOfBlockKey, blockKey } from './client-address.js'

const MAX_BLOCKS = 100_000
const sc = StringCodec()

export interface Blocklist {
  /** Whether the address key is blocked now. */
  isBlocked(address: string): boolean
  /** Live blocks this gateway knows of. */
  list(): BlockEntry[]
  /** Writes a block (idempotent: the same address and expiry write the same value). */
  block(entry: Omit<BlockEntry, 'v'>): Promise<void>
  /** Removes a block on every gateway; false when there was none. */
  lift(address: string): Promise<boolean>
  /** True once the initial values were read. */
  ready(): boolean
  close(): Promise<void>
}

/** Watches the blocklist bucket in the background (the gateway starts without JetStream and catches up). */
export function createBlocklist(nc: NatsConnection, config: Pick<Config, 'autoBlockTtlSec'>, log: Logger, now: () => number = Date.now): Blocklist {
  const live = new Map<string, BlockEntry>()
  let kv: KV | undefined
  let initialized = false
  let closed = false
  let stopWatch: (() => void) | undefined

  const stopRetry = retryInBackground(
    'watch blocklist',
    async () => {
      if (closed) return
      const bucket = await openBlocklistBucket(nc, config)
      const iter = await bucket.watch({ key: '>', initializedFn: () => (initialized = true) })
      kv = bucket
      stopWatch = () => iter.stop()
      void (async () => {
        for await (const e of iter) apply(e)
      })().catch((err: unknown) => {
        if (!closed) log.error({ err }, 'blocklist watch stopped')
      })
    },
    log,
  )

  function apply(e: KvEntry) {
    if (e.operation === 'DEL' || e.operation === 'PURGE') {
      const address = addressOfBlockKey(e.key)
      if (address) live.delete(address)
      return
    }
    const address = addressOfBlockKey(e.key)
    if (!address) {
      log.warn({ key: e.key.slice(0, 80), bucket: e.bucket }, 'blocklist entry with a malformed key ignored')
      return
    }
    const decoded = decodeBlockEntry(e.value)
    if (!decoded.ok) {
      log.warn({ key: e.key, reason: decoded.reason }, 'blocklist entry with a malformed value ignored')
      return
    }
    if (decoded.value.address !== address) {
      log.warn({ key: e.key, address: decoded.value.address }, 'blocklist entry whose value names another address ignored')
      return
    }
    if (decoded.value.expiresAt <= now()) {
      live.delete(address)
      return
    }
    if (live.size >= MAX_BLOCKS && !live.has(address)) {
      sweep()
      if (live.size >= MAX_BLOCKS) {
        log.error({ max: MAX_BLOCKS }, 'blocklist full; new block not enforced by this gateway')
        return
      }
    }
    live.set(address, decoded.value)
  }

  function sweep() {
    const t = now()
    for (const [address, entry] of live) if (entry.expiresAt <= t) live.delete(address)
  }

  async function bucket(): Promise<KV> {
    return kv ?? (kv = await openBlocklistBucket(nc, config))
  }

  return {
    isBlocked(address) {
      if (live.size === 0) return false
      const entry = live.get(address)
      if (entry === undefined) return false
      if (entry.expiresAt > now()) return true
      live.delete(address)
      return false
    },
    list() {
      sweep()
      return [...live.values()]
    },
    async block(entry) {
      const value: BlockEntry = { v: EVENT_VERSION, ...entry }
      await (await bucket()).put(blockKey(entry.address), sc.encode(JSON.stringify(value)))
    },
    async lift(address) {
      const b = await bucket()
      const key = blockKey(address)
      const current = await b.get(key)
      const existed = current !== null && current.operation === 'PUT'
      if (existed) await b.delete(key)
      live.delete(address)
      return existed
    },
    ready: () => initialized,
    async close() {
      closed = true
      stopRetry()
      stopWatch?.()
    },
  }
}
