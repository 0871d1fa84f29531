// The last requests this gateway answered, kept in a fixed ring (the oldest is overwritten): what
// operators look at first (`/telemetry`, the trace list) without a tracing backend. Bounded in count
// and in what each entry holds: a route template, never the raw URL; no bodies, no headers.

export interface RecentRequest {
  /** Epoch ms when the request arrived. */
  startedAt: number
  method: string
  /** The route template that served it. */
  route: string
  status: number
  durationMs: number
  /** The client address (IPv6 as its /64). */
  client: string
  traceId: string
  requestId: string
  /** The flow that ran it, for a flow route. */
  flow?: string
  /** The upstream target that answered it, for a proxy route. */
  upstream?: string
}

export interface RecentFilter {
  traceId?: string
  flow?: string
  route?: string
  /** An exact status, or a class: 2 for 2xx, 5 for 5xx. */
  status?: number
  minDurationMs?: number
  limit?: number
}

export interface RecentRequests {
  readonly capacity: number
  record(entry: RecentRequest): void
  /** Newest first, filtered. */
  list(filter?: RecentFilter): RecentRequest[]
}

export function createRecentRequests(capacity: number): RecentRequests {
  const ring = new Array<RecentRequest | undefined>(capacity)
  let next = 0
  const matches = (e: RecentRequest, f: RecentFilter) =>
    (f.traceId === undefined || e.traceId === f.traceId) &&
    (f.flow === undefined || e.flow === f.flow) &&
    (f.route === undefined || e.route === f.route) &&
    (f.status === undefined || (f.status < 10 ? Math.floor(e.status / 100) === f.status : e.status === f.status)) &&
    (f.minDurationMs === undefined || e.durationMs >= f.minDurationMs)
  return {
    capacity,
    record(entry) {
      if (capacity === 0) return
      ring[next] = entry
      next = (next + 1) % capacity
    },
    list(filter = {}) {
      const limit = Math.min(filter.limit ?? capacity, capacity)
      const out: RecentRequest[] = []
      for (let i = 1; i <= capacity && out.length < limit; i++) {
        const e = ring[(next - i + capacity) % capacity]
        if (e === undefined) break
        if (matches(e, filter)) out.push(e)
      }
      return out
    },
  }
}
