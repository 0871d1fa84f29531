// Tags: Redis sets of keys (`<tags.prefix><tag>`), filled by CACHE.TAG and by writes through the
// proxy to keys the policy tags, and emptied by CACHE.INVALIDATE, which deletes the keys with one
// Lua script per batch.
import { createHash } from 'node:crypto'
import type { Logger } from '../lib/logger.js'
import type { CacheStats } from './cache.js'
import type { Policy } from './policy.js'
import type { Pool } from './pool.js'
import type { ReadCache } from './read-cache.js'
import { encodeCommand, ReplyError } from './resp.js'
import type { UpstreamConnection } from './upstream.js'

/** Deletes a batch of a tag's keys and removes them from the tag set, atomically. KEYS[1] is the tag set. */
export const TAG_SCRIPT = `local n = 0
for i = 2, #KEYS do n = n + redis.call('DEL', KEYS[i]) end
if #KEYS > 1 then redis.call('SREM', KEYS[1], unpack(KEYS, 2)) end
return n`
const TAG_SCRIPT_SHA = createHash('sha1').update(TAG_SCRIPT).digest('hex')
/** A failing tag write is logged at most this often, with the count since the last line. */
const LOG_EVERY_MS = 10_000

export class Tags {
  private unlogged = 0
  private lastLog = 0

  constructor(
    private readonly policy: () => Policy,
    private readonly reads: ReadCache,
    private readonly stats: CacheStats,
    private readonly log: Logger,
  ) {}

  /** Adds a key written through the proxy to the tags the policy gives its pattern (no client waits for it). */
  tagWrite(pool: Pool, key: string): void {
    const policy = this.policy()
    if (policy.tagRules.length === 0) return
    for (const rule of policy.tagRules) {
      if (!rule.match(key)) continue
      const conn = pool.pick(0)
      if (conn === undefined) return this.failed(key, 'redis unavailable')
      for (const tag of rule.tags) {
        conn.send(encodeCommand(['SADD', policy.source.tags.prefix + tag, Buffer.from(key, 'latin1')]), {
          reply: (b, s, e) => {
            if (b[s] === 45) this.failed(key, b.toString('latin1', s + 1, Math.min(e - 2, s + 200)))
          },
          fail: (e) => this.failed(key, e.toString('latin1', 1, e.length - 2)),
        })
      }
    }
  }

  /** A key that did not join its tag: CACHE.INVALIDATE will miss it, so it is counted and logged. */
  private failed(key: string, why: string): void {
    this.stats.tagErrors++
    this.unlogged++
    const now = Date.now()
    if (now - this.lastLog < LOG_EVERY_MS) return
    this.log.warn({ key, why, failures: this.unlogged }, 'a key written through the proxy could not be added to its tag')
    this.lastLog = now
    this.unlogged = 0
  }

  /** CACHE.TAG: adds keys to a tag; the number newly added. */
  async tag(conn: UpstreamConnection, tag: string, keys: Buffer[]): Promise<number> {
    return Number(await conn.call(['SADD', this.policy().source.tags.prefix + tag, ...keys]))
  }

  /** CACHE.INVALIDATE: deletes every key of the tags in Redis (one script per batch) and drops them locally; the keys deleted. */
  async invalidate(conn: UpstreamConnection, tags: string[]): Promise<number> {
    const { prefix, batchSize } = this.policy().source.tags
    let total = 0
    for (const tag of tags) {
      const set = prefix + tag
      for (let round = 0; round < 1_000_000; round++) {
        const members = await conn.call(['SRANDMEMBER', set, batchSize])
        if (!Array.isArray(members) || members.length === 0) break
        const keys = members.filter((m): m is Buffer => Buffer.isBuffer(m))
        const args = [String(keys.length + 1), set, ...keys]
        let n
        try {
          n = await conn.call(['EVALSHA', TAG_SCRIPT_SHA, ...args])
        } catch (err) {
          if (!(err instanceof ReplyError) || !err.message.startsWith('NOSCRIPT')) throw err
          n = await conn.call(['EVAL', TAG_SCRIPT, ...args])
        }
        total += Number(n)
        for (const k of keys) this.reads.invalidate(k.toString('latin1'))
      }
      this.stats.tagInvalidations++
    }
    return total
  }
}
