// The admin list, read through Redis behind the cache proxy. The cache is an optimisation only:
// any cache failure (down, slow past CACHE_COMMAND_TIMEOUT_MS, garbage) is logged and the flow
// reads the database. Pages are tagged; creating an admin moves to a new generation and
// invalidates the tag.
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FlowContext } from '../context.js'

/** How long a page may be served; invalidation normally ends it sooner. */
export const ADMIN_LIST_TTL_SEC = 60
export const ADMIN_LIST_TAG = 'flowgate:admins'
// A generation number in the key: a list read that raced an admin creation writes its (old) page
// under the old generation, which nobody reads any more. The tag removes the old pages.
const GENERATION_KEY = 'flowgate:admins:generation'
const keyOf = (generation: string, page: number, limit: number) => `flowgate:admins:list:v2:${generation}:${page}:${limit}`

export const AdminItem = Type.Object({
  id: Type.String(),
  email: Type.String(),
  root: Type.Boolean(),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String({ description: 'ISO 8601' }),
})

export const AdminPage = Type.Object({
  items: Type.Array(AdminItem),
  total: Type.Integer(),
  page: Type.Integer(),
  limit: Type.Integer(),
})
export type AdminPage = Static<typeof AdminPage>
// What comes back from the cache is checked like any input: a bad entry is a miss, not a 500.
const AdminPageCheck = TypeCompiler.Compile(AdminPage)

export interface CachedRead {
  /** The cached page, or undefined on a miss (or when the cache is unusable). */
  value: AdminPage | undefined
  /** Stores the page read from the database under the generation seen before that read. */
  write(value: AdminPage): Promise<void>
}

export interface AdminListCache {
  read(page: number, limit: number): Promise<CachedRead>
  /** After a change to admins: a new generation, and the tagged pages deleted. */
  invalidate(): Promise<void>
}

const miss: CachedRead = { value: undefined, write: async () => {} }
const none: AdminListCache = { read: async () => miss, invalidate: async () => {} }

export function adminListCache(ctx: FlowContext): AdminListCache {
  const redis = ctx.deps.cache
  // Not connected: skip the cache without a word (the client logs its own state changes once).
  if (!redis || redis.status !== 'ready') return none
  const warn = (op: string, err: unknown) =>
    ctx.log.warn({ cacheOp: op, error: err instanceof Error ? err.message : String(err) }, 'cache unavailable; using the database')
  return {
    async read(page, limit) {
      let key: string
      try {
        key = keyOf((await redis.get(GENERATION_KEY)) ?? '0', page, limit)
      } catch (err) {
        warn('get', err)
        return miss
      }
      const write = async (value: AdminPage) => {
        try {
          // Tagged before it is written, so a page is never left untagged (plain Redis, without the
          // proxy, refuses CACHE.TAG: nothing is cached then).
          await redis.call('CACHE.TAG', ADMIN_LIST_TAG, key)
          await redis.set(key, JSON.stringify(value), 'EX', ADMIN_LIST_TTL_SEC)
        } catch (err) {
          warn('set', err)
        }
      }
      try {
        const raw = await redis.get(key)
        if (!raw) return { value: undefined, write }
        const value: unknown = JSON.parse(raw)
        if (AdminPageCheck.Check(value)) return { value, write }
        warn('get', new Error('malformed cache entry'))
      } catch (err) {
        warn('get', err)
      }
      return { value: undefined, write }
    },
    async invalidate() {
      try {
        await redis.incr(GENERATION_KEY)
        // The cache proxy's tag command (docs/cache-proxy.md): deletes every key of the tag atomically.
        await redis.call('CACHE.INVALIDATE', ADMIN_LIST_TAG)
      } catch (err) {
        // Pages of the old generation expire within ADMIN_LIST_TTL_SEC anyway.
        warn('invalidate', err)
      }
    },
  }
}
