// The gateway event stream and the blocklist bucket, declared once for the gateway, the subscriber
// and the CLI. Both are created when absent and checked (limits brought back to config) when present.
import { DiscardPolicy, nanos, RetentionPolicy, StorageType, type KV, type KvEntry, type NatsConnection, type StreamConfig } from 'nats'
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { buckets, streams, subjects } from './subjects.js'

export type StreamSettings = Pick<Config, 'eventsMaxAgeSec' | 'eventsMaxBytes' | 'eventsDuplicateWindowSec'>

function wanted(config: StreamSettings): Partial<StreamConfig> & { name: string } {
  return {
    name: streams.gateway,
    subjects: [subjects.gatewayAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(config.eventsMaxAgeSec * 1000),
    max_bytes: config.eventsMaxBytes,
    duplicate_window: nanos(Math.min(config.eventsDuplicateWindowSec, config.eventsMaxAgeSec) * 1000),
  }
}

/** Creates the gateway event stream, or brings an existing one's subjects and limits in line with config. */
export async function ensureGatewayStream(nc: NatsConnection, config: StreamSettings, log: Logger): Promise<'created' | 'updated' | 'unchanged'> {
  const jsm = await nc.jetstreamManager({ timeout: 2000 })
  const want = wanted(config)
  let current: StreamConfig
  try {
    current = (await jsm.streams.info(want.name)).config
  } catch (err) {
    if (!isNotFound(err)) throw err
    await jsm.streams.add(want)
    log.info({ stream: want.name }, 'gateway event stream created')
    return 'created'
  }
  const differs =
    current.max_age !== want.max_age ||
    current.max_bytes !== want.max_bytes ||
    current.duplicate_window !== want.duplicate_window ||
    current.discard !== want.discard ||
    !(current.subjects ?? []).includes(subjects.gatewayAll)
  if (!differs) return 'unchanged'
  await jsm.streams.update(want.name, { ...current, ...want, subjects: [...new Set([...(current.subjects ?? []), subjects.gatewayAll])] })
  log.info({ stream: want.name }, 'gateway event stream limits updated')
  return 'updated'
}

/** Opens (creating when absent) the blocklist bucket: one value per key, entries gone after the block TTL. */
export async function openBlocklistBucket(nc: NatsConnection, config: Pick<Config, 'autoBlockTtlSec'>): Promise<KV> {
  const js = nc.jetstream({ timeout: 2000 })
  return js.views.kv(buckets.blocklist, { history: 1, ttl: config.autoBlockTtlSec * 1000, max_bytes: 64 * 1024 * 1024 })
}

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { code?: number; err_code?: number } }
  return e.code === '404' || e.api_error?.code === 404
}

/**
 * Runs `attempt` until it succeeds, every `everyMs`, in the background, so a process starts without
 * JetStream and picks it up when it appears. Returns a stop function.
 */
export function retryInBackground(name: string, attempt: () => Promise<unknown>, log: Logger, everyMs = 2000): () => void {
  let stopped = false
  let timer: NodeJS.Timeout | undefined
  let failures = 0
  const run = () => {
    if (stopped) return
    attempt().then(
      () => {
        if (failures > 0) log.info({ task: name }, 'JetStream task succeeded after retries')
      },
      (err: unknown) => {
        if (failures++ === 0) log.warn({ err, task: name }, 'JetStream not available yet; retrying in the background')
        if (!stopped) timer = setTimeout(run, everyMs)
      },
    )
  }
  run()
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}

/**
 * Follows every key of a KV bucket in the background: the bucket is opened when JetStream is there
 * (retried until then), its current values and then each change go to `apply`, `initialized` is
 * called once the current values were read, and a watch that ends in an error is logged. Returns
 * the stop.
 */
export function watchBucketInBackground(
  name: string,
  open: () => Promise<KV>,
  apply: (e: KvEntry) => void,
  log: Logger,
  initialized?: () => void,
): () => void {
  let closed = false
  let stopWatch: (() => void) | undefined
  const stopRetry = retryInBackground(
    `watch ${name}`,
    async () => {
      if (closed) return
      const bucket = await open()
      const iter = await bucket.watch({ key: '>', ...(initialized ? { initializedFn: initialized } : {}) })
      stopWatch = () => iter.stop()
      void (async () => {
        for await (const e of iter) apply(e)
      })().catch((err: unknown) => {
        if (!closed) log.error({ err }, `${name} watch stopped`)
      })
    },
    log,
  )
  return () => {
    closed = true
    stopRetry()
    stopWatch?.()
  }
}
