// The blocklist as stored: one NATS KV entry per blocked address. Shared by the subscriber (writes
// auto-blocks), the gateway (watches the bucket, lifts on an admin's request) and the CLI (lists,
// adds, lifts). nats-server 2.9 has no per-message TTL, so each entry carries its own `expiresAt`
// and the bucket's max_age removes it from the store later.
import { isIPv4, isIPv6 } from 'node:net'
import type { KV, NatsConnection } from 'nats'
import { decodeBlockEntry, EVENT_VERSION, type BlockEntry, type Decoded } from '../schemas/events.js'
import { addressKey } from './address.js'
import type { Config } from './config.js'
import { openBlocklistBucket } from './streams.js'

// KV keys allow [-/_=.A-Za-z0-9]: IPv6 colons become underscores.
const KEY = /^[0-9a-f._/]+$/

/** The KV key of an address key. */
export function blockKey(address: string): string {
  return address.replaceAll(':', '_')
}

/** The address of a KV key, or undefined when the key is not one this code wrote. */
export function addressOfBlockKey(key: string): string | undefined {
  if (key.length > 64 || !KEY.test(key)) return undefined
  if (isIPv4(key)) return key
  if (!key.endsWith('__/64')) return undefined
  const address = key.replaceAll('_', ':')
  return isIPv6(address.slice(0, -3)) && addressKey(address.slice(0, -3)) === address ? address : undefined
}

/** One stored entry read back: a well-formed key, a valid value, and the value naming the key's address. */
export function readBlockEntry(key: string, value: Uint8Array): Decoded<BlockEntry> {
  const address = addressOfBlockKey(key)
  if (!address) return { ok: false, reason: 'malformed key' }
  const decoded = decodeBlockEntry(value)
  if (!decoded.ok) return decoded
  if (decoded.value.address !== address) return { ok: false, reason: `value names another address (${decoded.value.address})` }
  return decoded
}

export interface BlocklistStore {
  /** Writes a block (idempotent: the same address and expiry write the same value). */
  block(entry: Omit<BlockEntry, 'v'>): Promise<void>
  /** Removes a block on every gateway; false when there was none. */
  lift(address: string): Promise<boolean>
  /** The block stored for an address, if it is still in force. */
  get(address: string, nowMs?: number): Promise<BlockEntry | undefined>
  /** The blocks still in force, read from the bucket (bounded by `max`). */
  list(nowMs?: number, max?: number): Promise<BlockEntry[]>
}

/** Reads and writes the bucket; opens it (creating it when absent) on first use. Keeps no copy of its own. */
export function createBlocklistStore(nc: NatsConnection, config: Pick<Config, 'autoBlockTtlSec'>): BlocklistStore {
  let opened: Promise<KV> | undefined
  const bucket = (): Promise<KV> => {
    opened ??= openBlocklistBucket(nc, config).catch((err: unknown) => {
      opened = undefined // JetStream may come later: the next call tries again
      throw err
    })
    return opened
  }
  return {
    async block(entry) {
      const value: BlockEntry = { v: EVENT_VERSION, ...entry }
      await (await bucket()).put(blockKey(entry.address), JSON.stringify(value))
    },
    async lift(address) {
      const kv = await bucket()
      const key = blockKey(address)
      const current = await kv.get(key)
      if (current === null || current.operation !== 'PUT') return false
      await kv.delete(key)
      return true
    },
    async get(address, nowMs = Date.now()) {
      const key = blockKey(address)
      const entry = await (await bucket()).get(key)
      if (entry === null || entry.operation !== 'PUT') return undefined
      const read = readBlockEntry(key, entry.value)
      return read.ok && read.value.expiresAt > nowMs ? read.value : undefined
    },
    async list(nowMs = Date.now(), max = 10_000) {
      const kv = await bucket()
      const out: BlockEntry[] = []
      for await (const key of await kv.keys()) {
        const entry = await kv.get(key)
        if (entry === null || entry.operation !== 'PUT') continue
        const read = readBlockEntry(key, entry.value)
        if (read.ok && read.value.expiresAt > nowMs) out.push(read.value)
        if (out.length >= max) break
      }
      return out
    },
  }
}
