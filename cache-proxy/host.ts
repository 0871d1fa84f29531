// What a client session may ask of the proxy, and nothing more: a session owns its connection,
// its place among pinned clients and its buffered request bytes, and gives each back in one place
// when it ends.
import type { Logger } from '../lib/logger.js'
import type { CacheStats } from './cache.js'
import type { Policy } from './policy.js'
import type { Pool } from './pool.js'
import type { ReadCache } from './read-cache.js'
import type { Identity, WriteBatch } from './upstream.js'

/** A place among the clients on dedicated connections; released once, by its holder. */
export interface PinLease {
  release(): void
}

/** Where a proxy command (CACHE.*) runs: the client's protocol and pool. */
export interface ProxyCommandContext {
  proto: 2 | 3
  pool: Pool
  hint: number
}

export interface SessionHost {
  readonly log: Logger
  readonly stats: CacheStats
  /** Replies made in one batch of upstream replies leave in one write per client. */
  readonly batch: WriteBatch
  readonly reads: ReadCache
  readonly defaultPool: Pool
  policy(): Policy
  /** The pool of an identity, opened on first use; Redis's refusal of its setup otherwise. */
  pool(id: Identity): Promise<Pool | Buffer>
  /** A place for one more client on a dedicated connection, or undefined at limits.maxPinnedClients. */
  acquirePin(): PinLease | undefined
  /** Adds request bytes buffered by a client (a negative delta gives them back); the total after it. */
  holdRequestBytes(delta: number): number
  /** Adds a key written through the proxy to the tags the policy gives its pattern. */
  tagWrite(pool: Pool, key: string): void
  /** Answers CACHE.TAG, CACHE.INVALIDATE, CACHE.STATS, CACHE.HOTKEYS, CACHE.FLUSH. */
  cacheCommand(name: string, args: Buffer[], ctx: ProxyCommandContext): Buffer | Promise<Buffer>
  sessionClosed(session: object): void
}
