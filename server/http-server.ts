// The gateway's HTTP server, listening before NATS is reachable: liveness answers, readiness says
// no, and every other request gets the 503 envelope at once instead of a refused connection. When
// the bus is up, the Fastify app takes over the same server (no port switch, nothing refused).
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http'
import { errorEnvelope } from '../lib/envelope.js'
import { errors } from '../lib/errors.js'
import { acceptRequestId, parseTraceparent } from '../lib/trace-context.js'

export interface GatewayHttpServer {
  server: Server
  /** Takes the handler that will serve (Fastify's, through its serverFactory option). */
  prepare(handler: RequestListener): void
  /** Hands every request from now on to the prepared handler: call it once the app is ready. */
  activate(): void
}

const JSON_TYPE = 'application/json; charset=utf-8'

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
