// A real OTLP/HTTP receiver (JSON encoding, POST /v1/traces) on a free port, standing in for a
// collector or Jaeger: it keeps every span with its resource, kind, attributes, status and events.
// It can also fail (HTTP 503) or stall (answer nothing) to test a collector that is down or slow.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { freePort } from './process.js'

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
type KeyValue = { key: string; value: AnyValue }

export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  name: string
  /** OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number
  attributes: Record<string, string | number | boolean>
  resource: Record<string, string | number | boolean>
  status: { code?: number; message?: string }
  events: Array<{ name: string; attributes: Record<string, string | number | boolean> }>
  startNs: bigint
  endNs: bigint
}

export const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const

export interface OtlpReceiver {
  endpoint: string
  spans: ReceivedSpan[]
  /** Requests received (answered or not). */
  posts: number
  mode: 'ok' | 'fail' | 'stall'
  trace(traceId: string): ReceivedSpan[]
  close(): Promise<void>
}

const valueOf = (v: AnyValue): string | number | boolean =>
  v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.boolValue ?? v.doubleValue ?? ''
const attrs = (list: KeyValue[] | undefined) => Object.fromEntries((list ?? []).map((kv) => [kv.key, valueOf(kv.value)]))

interface OtlpDoc {
  resourceSpans: Array<{
    resource?: { attributes?: KeyValue[] }
    scopeSpans: Array<{
      spans: Array<{
        traceId: string
        spanId: string
        parentSpanId?: string
        name: string
        kind: number
        attributes?: KeyValue[]
        status?: { code?: number; message?: string }
        events?: Array<{ name: string; attributes?: KeyValue[] }>
        startTimeUnixNano: string | number
        endTimeUnixNano: string | number
      }>
    }>
  }>
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const port = await freePort()
  const stalled: ServerResponse[] = []
  const receiver: OtlpReceiver = {
    endpoint: `http://127.0.0.1:${port}`,
    spans: [],
    posts: 0,
    mode: 'ok',
    trace: (traceId) => receiver.spans.filter((s) => s.traceId === traceId),
    close: async () => {
      for (const res of stalled) res.destroy()
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    },
  }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      receiver.posts++
      if (receiver.mode === 'stall') {
        stalled.push(res)
        return
      }
      if (receiver.mode === 'fail' || req.url !== '/v1/traces') {
        res.writeHead(503).end()
        return
      }
      const doc = JSON.parse(Buffer.concat(chunks).toString()) as OtlpDoc
      for (const rs of doc.resourceSpans) {
        const resource = attrs(rs.resource?.attributes)
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            receiver.spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              name: s.name,
              kind: s.kind,
              attributes: attrs(s.attributes),
              resource,
              status: s.status ?? {},
              events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attrs(e.attributes) })),
              startNs: BigInt(s.startTimeUnixNano),
              endNs: BigInt(s.endTimeUnixNano),
            })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return receiver
}
