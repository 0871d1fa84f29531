// The gateway's HTTP server, listening before NATS is reachable: liveness answers, readiness says
// no, and every other request gets the 503 envelope at once instead of a refused connection. When
// the bus is up, the Fastify app takes over the same server (no port switch, nothing refused).
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import { errorEnvelope, JSON_TYPE } from '../lib/envelope.js'
import { errors } from '../lib/errors.js'
import { acceptRequestId, parseTraceparent } from '../lib/trace-context.js'

export interface GatewayHttpServer {
  server: Server
  /** Takes the handler that will serve (Fastify's, through its serverFactory option). */
  prepare(handler: RequestListener): void
  /** Hands every request from now on to the prepared handler: call it once the app is ready. */
  activate(): void
  listen(port: number, host: string): Promise<void>
  /** Stops accepting; resolves when the open requests have finished (idempotent). */
  close(): Promise<void>
}

export function createGatewayHttpServer(): GatewayHttpServer {
  let handler: RequestListener = waitingForBus
  let prepared: RequestListener | undefined
  const server = createServer((req, res) => handler(req, res))
  server.requestTimeout = 30_000
  return {
    server,
    prepare(next) {
      prepared = next
    },
    activate() {
      if (!prepared) throw new Error('no handler prepared')
      handler = prepared
    },
    listen: (port, host) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.removeListener('error', reject)
          resolve()
        })
      }),
    close: () => drain(server, () => (server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve())),
  }
}

/**
 * Runs `close` while closing keep-alive connections as they go idle: a connection whose request
 * finishes after closing began would otherwise stay open, and the server would wait for it.
 */
export async function drain(server: Server, close: () => Promise<unknown>): Promise<void> {
  const sweep = setInterval(() => server.closeIdleConnections(), 100)
  try {
    server.closeIdleConnections()
    await close()
  } finally {
    clearInterval(sweep)
  }
}

function waitingForBus(req: IncomingMessage, res: ServerResponse): void {
  req.resume() // the body is not read: nothing can be done with it yet
  const traceId = parseTraceparent(req.headers.traceparent).traceId
  const headers = { 'content-type': JSON_TYPE, 'x-trace-id': traceId, 'x-request-id': acceptRequestId(req.headers['x-request-id']) }
  const path = (req.url ?? '/').split('?')[0]
  if (path === '/health') {
    res.writeHead(200, headers).end('{"status":"ok"}')
  } else if (path === '/ready') {
    res.writeHead(503, headers).end('{"ready":false,"checks":{"nats":false,"flows":false,"accepting":true}}')
  } else {
    const err = errors.serviceUnavailable('The gateway is waiting for the message bus')
    res.writeHead(err.status, headers).end(JSON.stringify(errorEnvelope(err, traceId)))
  }
}
