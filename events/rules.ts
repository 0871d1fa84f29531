// The subscriber's rules as a pure state machine: events in, actions out, no I/O. Redelivery-safe:
// hits are remembered by event id, so a redelivered hit is not counted twice; a block's value is
// derived from the events (not the clock), so writing it again writes the same thing; alerts carry
// the id of the event that raised them, which makes their publish idempotent. All state is bounded.
import { createAddressSet } from '../lib/address.js'
import type { Config } from '../lib/config.js'
import { EVENT_VERSION, type Alert, type BlockEntry, type GatewayEvent, type RateLimitHit, type RequestCompleted } from '../schemas/events.js'

export type RuleConfig = Pick<
  Config,
  'autoBlockHits' | 'autoBlockWindowSec' | 'autoBlockTtlSec' | 'autoBlockExempt' | 'latencySpikeFactor' | 'latencyWindow' | 'latencySpikeMinMs'
>

export type Action = { type: 'block'; entry: BlockEntry; cause: string } | { type: 'alert'; alert: Alert }

const MAX_ADDRESSES = 100_000
const MAX_ROUTES = 2_000
const MAX_SEEN = 100_000
/** A route's mean is trusted once it has this many samples (or the whole window, if smaller). */
const MIN_SAMPLES = 10

interface LatencyWindow {
  samples: Float64Array
  next: number
  count: number
  sum: number
}

export interface Rules {
  /** What to do about one event. Handling the same event again yields no new effect. */
  handle(event: GatewayEvent, nowMs?: number): Action[]
  /** Replays a past hit into the window without acting (used to warm up after a restart). */
  remember(hit: RateLimitHit): void
}

export function createRules(config: RuleConfig): Rules {
  const windowMs = config.autoBlockWindowSec * 1000
  const keep = Math.max(config.autoBlockHits, 16)
  const hits = new Map<string, Array<{ id: string; ts: number }>>()
  const lastBlockedAt = new Map<string, number>()
  const latency = new Map<string, LatencyWindow>()
  const seen = new Set<string>()
  const exempt = createAddressSet(config.autoBlockExempt)

  /** Adds a hit (once per id) and returns the address's hits inside the window ending at `ts`. */
  function record(hit: RateLimitHit): Array<{ id: string; ts: number }> {
    let list = hits.get(hit.address)
    if (list === undefined) {
      if (hits.size >= MAX_ADDRESSES) hits.delete(hits.keys().next().value as string)
      list = []
      hits.set(hit.address, list)
    }
    if (!list.some((h) => h.id === hit.id)) {
      list.push({ id: hit.id, ts: hit.ts })
      list.sort((a, b) => a.ts - b.ts)
      if (list.length > keep) list.splice(0, list.length - keep)
    }
    return list.filter((h) => h.ts > hit.ts - windowMs && h.ts <= hit.ts)
  }

  function onHit(hit: RateLimitHit, nowMs: number): Action[] {
    // An exempt address (the operator's own machine, a health checker) is limited, never blocked.
    if (exempt(hit.address)) return []
    // Hits up to the last block's start were answered by that block; only later ones count again.
    const since = lastBlockedAt.get(hit.address) ?? -Infinity
    const inWindow = record(hit).filter((h) => h.ts > since)
    if (inWindow.length < config.autoBlockHits) return []
    // The block starts at the hit that crossed the threshold: the same events give the same block.
    const crossing = inWindow[config.autoBlockHits - 1]!
    const blockedAt = crossing.ts
    const expiresAt = blockedAt + config.autoBlockTtlSec * 1000
    if (lastBlockedAt.size >= MAX_ADDRESSES) lastBlockedAt.delete(lastBlockedAt.keys().next().value as string)
    lastBlockedAt.set(hit.address, blockedAt)
    // A block that would already be over (a replay of old events) is not written again.
    if (expiresAt <= nowMs) return []
    const entry: BlockEntry = {
      v: EVENT_VERSION,
      address: hit.address,
      reason: `${config.autoBlockHits} rate-limit hits within ${config.autoBlockWindowSec}s`,
      blockedAt,
      expiresAt,
    }
    return [{ type: 'block', entry, cause: crossing.id }]
  }

  function onCompleted(e: RequestCompleted): Action[] {
    const key = `${e.method} ${e.route}`
    let w = latency.get(key)
    if (w === undefined) {
      if (latency.size >= MAX_ROUTES) latency.delete(latency.keys().next().value as string)
      w = { samples: new Float64Array(config.latencyWindow), next: 0, count: 0, sum: 0 }
      latency.set(key, w)
    }
    const actions: Action[] = []
    const mean = w.count > 0 ? w.sum / w.count : 0
    // The floor keeps sub-millisecond routes quiet: 3 ms against a 0.25 ms mean is jitter, not an incident.
    const spike = e.latencyMs >= config.latencySpikeMinMs && e.latencyMs > config.latencySpikeFactor * mean
    if (w.count >= Math.min(MIN_SAMPLES, config.latencyWindow) && mean > 0 && spike) {
      actions.push({
        type: 'alert',
        alert: {
          v: EVENT_VERSION,
          kind: 'latency_spike',
          cause: e.id,
          ts: e.ts,
          message: `${key} took ${e.latencyMs.toFixed(1)} ms, ${(e.latencyMs / mean).toFixed(1)}x the rolling mean of ${mean.toFixed(1)} ms`,
          details: { route: e.route, method: e.method, latencyMs: e.latencyMs, meanMs: Math.round(mean * 1000) / 1000, requestId: e.requestId, traceId: e.traceId },
        },
      })
    }
    if (w.count === w.samples.length) w.sum -= w.samples[w.next]!
    else w.count++
    w.samples[w.next] = e.latencyMs
    w.sum += e.latencyMs
    w.next = (w.next + 1) % w.samples.length
    return actions
  }

  function firstTime(id: string): boolean {
    if (seen.has(id)) return false
    if (seen.size >= MAX_SEEN) seen.delete(seen.values().next().value as string)
    seen.add(id)
    return true
  }

  return {
    handle(event, nowMs = Date.now()) {
      switch (event.kind) {
        case 'rate_limit.hit':
          // Not gated by `seen`: a replayed hit is deduplicated inside its window instead.
          return onHit(event, nowMs)
        case 'request.completed':
          return firstTime(event.id) ? onCompleted(event) : []
        case 'circuit.opened':
          return [
            {
              type: 'alert',
              alert: {
                v: EVENT_VERSION,
                kind: 'circuit_opened',
                cause: event.id,
                ts: event.ts,
                message: `circuit opened for ${event.upstream}${event.reason ? `: ${event.reason}` : ''}`,
                details: { upstream: event.upstream, source: event.source },
              },
            },
          ]
        case 'circuit.closed':
        case 'ip.blocked':
          return []
      }
    },
    remember(hit) {
      record(hit)
    },
  }
}
