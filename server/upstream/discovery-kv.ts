// Instances registered in the services KV bucket become targets of the upstreams whose services file
// entry says `discover: { kv: <service> }`. Every gateway watches the bucket, so an instance that
// registers appears on all of them at once, and one that stops renewing disappears at its expiry.
// The bus is not trusted: a value must be well-formed, name its key's service, use http(s) without
// credentials, and each service is capped at MAX_DISCOVERED instances.
import type { KvEntry, NatsConnection } from 'nats'
import type { Logger } from '../../lib/logger.js'
import { openServicesBucket, readInstance, serviceOfKey } from '../../lib/service-registry.js'
import { watchBucketInBackground } from '../../lib/streams.js'
import { targetUrl } from './services-file.js'
import type { TargetSpec } from './spec.js'
import { MAX_DISCOVERED, type Upstreams } from './upstreams.js'

const MAX_KEYS = 10_000
const SWEEP_MS = 1000

interface Live {
  url: string
  weight: number
  expiresAt: number
}

/** Watches the bucket in the background (the gateway starts without JetStream and catches up). */
export function watchServiceRegistry(nc: NatsConnection, upstreams: Upstreams, log: Logger, now: () => number = Date.now): { close(): void } {
  const byService = new Map<string, Map<string, Live>>()
  let keys = 0
  const stopWatch = watchBucketInBackground('service registry', () => openServicesBucket(nc), (e) => apply(e), log)

  function apply(e: KvEntry) {
    const service = serviceOfKey(e.key)
    if (service === undefined) return
    const instances = byService.get(service)
    if (e.operation === 'DEL' || e.operation === 'PURGE') {
      if (instances?.delete(e.key)) {
        keys--
        publish(service)
      }
      return
    }
    const read = readInstance(e.key, e.value)
    const url = read.ok ? targetUrl(read.value.url) : undefined
    if (!read.ok || typeof url !== 'string') {
      log.warn({ key: e.key.slice(0, 80), reason: read.ok ? (url as { problem: string }).problem : read.reason }, 'service registration ignored')
      return
    }
    if (read.value.expiresAt <= now()) return
    const list = instances ?? new Map<string, Live>()
    if (!list.has(e.key)) {
      if (keys >= MAX_KEYS || list.size >= MAX_DISCOVERED) {
        log.warn({ service, max: MAX_DISCOVERED }, 'service registration ignored: too many instances')
        return
      }
      keys++
    }
    list.set(e.key, { url, weight: read.value.weight, expiresAt: read.value.expiresAt })
    byService.set(service, list)
    publish(service)
  }

  function publish(service: string) {
    const list = byService.get(service)
    const targets: TargetSpec[] = []
    const seen = new Set<string>()
    for (const i of list?.values() ?? []) {
      if (seen.has(i.url)) continue
      seen.add(i.url)
      targets.push({ url: i.url, weight: i.weight })
    }
    targets.sort((a, b) => a.url.localeCompare(b.url))
    if (upstreams.followed('kv').has(service)) upstreams.discovered('kv', service, targets)
  }

  const sweep = setInterval(() => {
    const t = now()
    for (const [service, list] of byService) {
      let changed = false
      for (const [key, i] of list) {
        if (i.expiresAt > t) continue
        list.delete(key)
        keys--
        changed = true
        log.info({ service, url: i.url }, 'service registration expired')
      }
      if (changed) publish(service)
    }
  }, SWEEP_MS)
  sweep.unref()
  // A reload that starts following a service takes its instances at once.
  upstreams.onSpecChange(() => {
    for (const service of upstreams.followed('kv').keys()) publish(service)
  })

  return {
    close() {
      clearInterval(sweep)
      stopWatch()
    },
  }
}
