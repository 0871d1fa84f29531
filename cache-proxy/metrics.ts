// Prometheus metrics of the cache proxy. The hot path only bumps plain counters in CacheStats; the
// collectors read them at scrape time, so metrics cost nothing per command.
import type { Registry } from 'prom-client'
import { scrapedCounter, scrapedGauge } from '../lib/metrics.js'
import type { CacheStats } from './cache.js'
import type { CacheProxy } from './proxy.js'

const COUNTERS: Array<[keyof CacheStats, string, string]> = [
  ['hits', 'flowgate_cache_hits_total', 'replies served from the local cache'],
  ['misses', 'flowgate_cache_misses_total', 'cacheable reads not in the local cache'],
  ['coalesced', 'flowgate_cache_coalesced_total', 'misses that joined a read already in flight (singleflight)'],
  ['fills', 'flowgate_cache_fills_total', 'replies stored in the local cache'],
  ['fillsDiscarded', 'flowgate_cache_fills_discarded_total', 'replies not stored because their key was invalidated while in flight'],
  ['evictions', 'flowgate_cache_evictions_total', 'entries evicted to stay within the byte bound'],
  ['expirations', 'flowgate_cache_expirations_total', 'entries dropped at their hard TTL'],
  ['invalidatedEntries', 'flowgate_cache_invalidated_entries_total', 'entries dropped by writes, tracking messages or tags'],
  ['flushes', 'flowgate_cache_flushes_total', 'whole-cache flushes (FLUSHDB/FLUSHALL, tracking lost, policy reload)'],
  ['refreshes', 'flowgate_cache_refreshes_total', 'hot entries re-read before expiry'],
  ['tagInvalidations', 'flowgate_cache_tag_invalidations_total', 'tags invalidated'],
  ['waiterTimeouts', 'flowgate_cache_waiter_timeouts_total', 'coalesced waiters that passed their deadline'],
  ['upstreamErrors', 'flowgate_cache_upstream_errors_total', 'commands answered with an error because Redis was unavailable'],
  ['protocolErrors', 'flowgate_cache_protocol_errors_total', 'clients disconnected for malformed RESP'],
  ['outputLimitDisconnects', 'flowgate_cache_output_limit_disconnects_total', 'clients disconnected for not reading their replies'],
  ['requestLimitDisconnects', 'flowgate_cache_request_limit_disconnects_total', 'clients disconnected for a request over the buffer bounds'],
  ['refusedCommands', 'flowgate_cache_refused_commands_total', 'commands refused by the policy (administrative or listed)'],
  ['tagErrors', 'flowgate_cache_tag_errors_total', 'keys written through the proxy that could not be added to their tag'],
  ['redisHung', 'flowgate_cache_redis_hung_total', 'times Redis answered nothing within upstream.replyTimeoutMs and the shared connections were dropped'],
]

/** Registers the cache proxy's metrics on a registry. */
export function registerCacheMetrics(registry: Registry, proxy: CacheProxy): void {
  for (const [field, name, help] of COUNTERS) scrapedCounter(registry, name, help, () => proxy.stats[field])
  const gauge = (name: string, help: string, read: () => number) => scrapedGauge(registry, name, help, read)
  gauge('flowgate_cache_bytes', 'bytes held by the local cache', () => proxy.reads.cache.bytes)
  gauge('flowgate_cache_entries', 'entries in the local cache', () => proxy.reads.cache.size)
  gauge('flowgate_cache_hot_keys', 'keys currently detected as hot', () => proxy.reads.hot.hotCount())
  gauge('flowgate_cache_clients', 'connected clients', () => proxy.clients)
  gauge('flowgate_cache_pinned_clients', 'clients on a dedicated upstream connection', () => proxy.pinnedClients)
  gauge('flowgate_cache_tracking_up', '1 when Redis client tracking is established (caching is on)', () => (proxy.tracker.ready ? 1 : 0))
}
