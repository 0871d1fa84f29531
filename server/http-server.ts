// The gateway's HTTP server, listening before NATS is reachable: liveness answers, readiness says
// no, and every other request gets the 503 envelope at once instead of a refused connection. When
// the bus is up, the Fastify app takes over the same server (no port switch, nothing refused).
import { createServer, ServerResponse, type IncomingMessage, type RequestListener, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { errorEnvelope, JSON_TYPE } from '../lib/envelope.js'
import { errors, type FlowgateError } from '../lib/errors.js'
import type { Logger } from '../lib/logger.js'
import { acceptRequestId, parseTraceparent } from '../lib/trace-context.js'
import { createClientErrorHandler } from './client-errors.js'
import { notReady } from './ops-routes.js'

/** The server's `upgrade` listener. */
export type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void

export interface GatewayHttpServer {
  server: Server
  /** The server's `clientError` listener (requests the HTTP parser refuses), for Fastify to take as its own. */
  clientErrorHandler: ReturnType<typeof createClientErrorHandler>
  /** Takes the handler that will serve (Fastify's, through its serverFactory option). */
  prepare(handler: RequestListener): void
  /** Takes the listener that will serve upgrade requests (WebSocket proxying) once activated. */
  prepareUpgrade(listener: UpgradeListener): void
  /** Hands every request from now on to the prepared handler: call it once the app is ready. */
  activate(): void
  listen(port: number, host: string): Promise<void>
  /** Stops accepting; resolves when the open requests have finished (idempotent). */
  close(): Promise<void>
}

export function createGatewayHttpServer(opts: { requestTimeoutMs: number; log: Logger }): GatewayHttpServer {
  let handler: RequestListener = waitingForBus
  let prepared: RequestListener | undefined
  // Until the app is ready an upgrade is answered as any request is: 503, no upgrade.
  let upgrade: UpgradeListener = (req, socket) => serveOnSocket(req, socket, waitingForBus)
  let preparedUpgrade: UpgradeListener | undefined
  const server = createServer(
    {
      // A client has this long to send its whole request (408 after), headers within the same bound;
      // checked every second rather than Node's default 30 s, so the bound is the bound.
      requestTimeout: opts.requestTimeoutMs,
      headersTimeout: opts.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, opts.requestTimeoutMs),
    },
    (req, res) => handler(req, res),
  )
  const clientErrorHandler = createClientErrorHandler(opts.log)
  server.on('clientError', clientErrorHandler)
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(req, socket, head))
  return {
    server,
    clientErrorHandler,
    prepare(next) {
      prepared = next
    },
    prepareUpgrade(listener) {
      preparedUpgrade = listener
    },
    activate() {
      if (!prepared) throw new Error('no handler prepared')
      handler = prepared
      if (preparedUpgrade) upgrade = preparedUpgrade
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

/**
 * Serves a request that arrived as an upgrade with a plain HTTP answer on its socket (Node hands
 * such a request over without a response object), then closes the connection.
 */
export function serveOnSocket(req: IncomingMessage, socket: Duplex, handle: RequestListener): ServerResponse {
  const res = new ServerResponse(req)
  res.assignSocket(socket as Parameters<ServerResponse['assignSocket']>[0])
  // The connection ends with this answer: another request on it would find no parser.
  res.shouldKeepAlive = false
  res.once('finish', () => (socket as { destroySoon?: () => void }).destroySoon?.() ?? socket.end())
  handle(req, res)
  return res
}

function waitingForBus(req: IncomingMessage, res: ServerResponse): void {
  req.resume() // the body is not read: nothing can be done with it yet
  const traceId = parseTraceparent(req.headers.traceparent).traceId
  const headers = { 'content-type': JSON_TYPE, 'x-trace-id': traceId, 'x-request-id': acceptRequestId(req.headers['x-request-id']) }
  // The ops paths as the app matches them: with or without trailing slashes, any query.
  const path = (req.url ?? '/').split('?')[0]!.replace(/(.)\/+$/, '$1')
  const send = (status: number, body: string) => res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) }).end(body)
  const refuse = (err: FlowgateError) => send(err.status, JSON.stringify(errorEnvelope(err, traceId)))
  if (path === '/health') send(200, '{"status":"ok"}')
  else if (path === '/ready') refuse(notReady({ nats: false, flows: false, accepting: true }))
  else refuse(errors.serviceUnavailable('The gateway is waiting for the message bus'))
}
