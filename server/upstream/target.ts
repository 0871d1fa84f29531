// One target of an upstream: its keep-alive undici Pool, its breaker, its latency estimate, its
// ejection state and its counters. Kept across services-file reloads while its URL and pool
// settings stay the same, so a reload does not reset its breaker or drop its connections.
import { Pool } from 'undici'
import { PeakEwma } from './ewma.js'
import type { Balanced } from './balancers.js'
import { createBreaker, type TargetBreaker, type Transition } from './breaker.js'
import { newEjectionState, type EjectionState } from './outlier.js'
import type { UpstreamSpec } from './spec.js'

export class UpstreamTarget implements Balanced {
  /** `<upstream> <url>`: names the target in stats, events and the request log. */
  readonly label: string
  readonly origin: string
  /** The URL's path, prepended to every forwarded path ('' for none). */
  readonly basePath: string
  readonly pool: Pool
  readonly breaker: TargetBreaker
  readonly ewma = new PeakEwma()
  readonly ejection: EjectionState = newEjectionState()
  /** Requests in flight, open WebSockets included (least connections spreads sockets too). */
  active = 0
  /** Open WebSockets. */
  sockets = 0
  current = 0
  handled = 0
  failures = 0
  /** False while the active health check says so. */
  healthy = true
  /** True once retired by a reload: it finishes what it has and takes nothing new. */
  retired = false

  constructor(
    readonly upstream: string,
    readonly url: string,
    readonly weight: number,
    /** Identifies the pool settings: a reload that changes them makes a new target. */
    readonly settingsKey: string,
    spec: UpstreamSpec,
    onBreaker: (target: UpstreamTarget, t: Transition) => void,
  ) {
    const u = new URL(url)
    this.origin = u.origin
    this.basePath = u.pathname === '/' ? '' : u.pathname
    this.label = `${upstream} ${url}`
    this.pool = new Pool(this.origin, {
      connections: spec.connections,
      pipelining: 1,
      keepAliveTimeout: 4000,
      headersTimeout: spec.timeouts.tryMs,
      bodyTimeout: spec.timeouts.idleMs,
      connect: {
        timeout: spec.timeouts.connectMs,
        ...(spec.tls ? { rejectUnauthorized: !spec.tls.insecure, ...(spec.tls.ca ? { ca: spec.tls.ca } : {}), ...(spec.tls.serverName ? { servername: spec.tls.serverName } : {}) } : {}),
      },
    })
    this.breaker = createBreaker(spec.breaker, (t) => onBreaker(this, t))
  }

  /** Lets requests in flight finish, then closes the connections (bounded by `timeoutMs`). */
  async retire(timeoutMs: number): Promise<void> {
    this.retired = true
    this.breaker.shutdown()
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, timeoutMs, 'late')))
    try {
      if ((await Promise.race([this.pool.close(), late])) === 'late') await this.pool.destroy()
    } finally {
      clearTimeout(timer)
    }
  }
}

/** What makes two targets' pools interchangeable. */
export function settingsKey(spec: UpstreamSpec): string {
  return JSON.stringify([spec.connections, spec.timeouts, spec.tls ?? null, spec.breaker])
}
