// A proxied WebSocket's completion, reported once when both sides are closed, as a proxied
// request's is when it finishes: the server span (status 101, the close), one log line, the
// `gateway.request.completed` event and the recent-requests ring, with the socket's life as its
// duration. The reply was hijacked at the upgrade, so the completion hooks never see it.
import type { FastifyRequest } from 'fastify'
import { addressKey } from '../../lib/address.js'
import type { EventPublisher } from '../events/publisher.js'
import type { RecentRequests } from '../recent.js'
import type { RelayEnd } from './ws-relay.js'

export interface SocketEnd {
  route: string
  /** `<upstream> <url>` of the target it was open to. */
  target: string
  startedAt: number
  durationMs: number
  clientKey: string
  end: RelayEnd
}

export function reportSocketEnd(r: FastifyRequest, deps: { events: EventPublisher | undefined; recent: RecentRequests | undefined }, s: SocketEnd): void {
  const { route, end, durationMs } = s
  if (r.span?.recording) {
    const lost = end.code === 1011 || (end.by === 'upstream' && end.code === 1006)
    r.span.end(lost ? { code: String(end.code), message: end.reason || 'closed abnormally', status: 101 } : undefined, {
      name: `GET ${route}`,
      attributes: {
        'http.route': route,
        'http.response.status_code': 101,
        'flowgate.request_id': r.id,
        'websocket.close_code': end.code,
        'websocket.closed_by': end.by,
        'websocket.bytes_in': end.bytesIn,
        'websocket.bytes_out': end.bytesOut,
      },
    })
  } else r.span?.end()
  r.log.info(
    { method: 'GET', route, status: 101, durationMs, trace_id: r.traceId, closeCode: end.code, closedBy: end.by, bytesIn: end.bytesIn, bytesOut: end.bytesOut },
    'websocket closed',
  )
  deps.events?.emit({
    kind: 'request.completed',
    requestId: r.id,
    traceId: r.traceId,
    method: 'GET',
    route,
    status: 101,
    latencyMs: durationMs,
    startedAt: s.startedAt,
    clientKey: r.clientKey || s.clientKey,
    address: r.clientAddress || addressKey(r.ip || 'unknown'),
  })
  deps.recent?.record({
    startedAt: s.startedAt,
    method: 'GET',
    route,
    status: 101,
    durationMs,
    client: r.clientAddress || r.ip || '',
    traceId: r.traceId,
    requestId: r.id,
    flow: undefined,
    upstream: s.target,
  })
}
