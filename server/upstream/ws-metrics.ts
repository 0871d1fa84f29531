// Prometheus metrics of proxied WebSockets, in the style of ./metrics.ts. Labels are bounded:
// upstream names come from the services file, close codes are the registered ones (1000-1015) or
// their range (3xxx registered, 4xxx private), the closing side one of three.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { WebSocketRegistry } from './ws-sockets.js'

export type ClosedBy = 'client' | 'upstream' | 'gateway'

export interface WebSocketMetrics {
  opened(upstream: string): void
  closed(upstream: string, code: number, by: ClosedBy, seconds: number): void
  /** Bytes a socket relayed (in: client to upstream, out: upstream to client), added when it closes. */
  bytes(upstream: string, bytesIn: number, bytesOut: number): void
}

/** A close code as a bounded label. */
export function codeLabel(code: number): string {
  if (code >= 1000 && code <= 1015) return String(code)
  if (code >= 3000 && code <= 3999) return '3xxx'
  if (code >= 4000 && code <= 4999) return '4xxx'
  return 'other'
}

export function createWebSocketMetrics(registry: Registry, sockets: WebSocketRegistry): WebSocketMetrics {
  new Gauge({
    name: 'flowgate_ws_open_sockets',
    help: 'Proxied WebSockets open now, by upstream',
    labelNames: ['upstream'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const [upstream, n] of sockets.byUpstream()) this.set({ upstream }, n)
    },
  })
  new Gauge({
    name: 'flowgate_ws_buffered_bytes',
    help: 'Bytes of proxied WebSocket messages held by the gateway, not yet written to either side',
    registers: [registry],
    collect() {
      this.set(sockets.bufferedBytes())
    },
  })
  const opened = new Counter({ name: 'flowgate_ws_opened_total', help: 'Proxied WebSockets opened, by upstream', labelNames: ['upstream'] as const, registers: [registry] })
  const closed = new Counter({
    name: 'flowgate_ws_closed_total',
    help: 'Proxied WebSockets closed, by upstream, close code (the first side to close; 1006 when its connection was lost) and who closed first',
    labelNames: ['upstream', 'code', 'closed_by'] as const,
    registers: [registry],
  })
  const bytes = new Counter({
    name: 'flowgate_ws_bytes_total',
    help: 'Message payload bytes relayed: in = client to upstream, out = upstream to client',
    labelNames: ['upstream', 'direction'] as const,
    registers: [registry],
    // Open sockets add what they relayed since the last scrape here, so a message pays no counter update.
    collect() {
      for (const s of sockets.sockets()) add(s.upstream, s.takeBytes())
    },
  })
  const add = (upstream: string, d: { in: number; out: number }) => {
    if (d.in > 0) bytes.inc({ upstream, direction: 'in' }, d.in)
    if (d.out > 0) bytes.inc({ upstream, direction: 'out' }, d.out)
  }
  const life = new Histogram({
    name: 'flowgate_ws_socket_duration_seconds',
    help: 'How long proxied WebSockets stayed open, by upstream',
    labelNames: ['upstream'] as const,
    buckets: [1, 10, 60, 300, 1800, 3600, 14_400, 86_400],
    registers: [registry],
  })
  return {
    opened: (upstream) => opened.inc({ upstream }),
    closed(upstream, code, by, seconds) {
      closed.inc({ upstream, code: codeLabel(code), closed_by: by })
      life.observe({ upstream }, seconds)
    },
    bytes: (upstream, bytesIn, bytesOut) => add(upstream, { in: bytesIn, out: bytesOut }),
  }
}
