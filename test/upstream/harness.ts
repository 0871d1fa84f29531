// Real HTTP upstreams on free ports for proxy tests: they record what reached them, can be killed
// (listener closed, open sockets destroyed) and brought back on the same port.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { writeFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, tempDir } from '../harness/process.js'

export interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: Buffer
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void

export interface TestUpstream {
  name: string
  port: number
  url: string
  seen: Seen[]
  server: Server
  /** Closes the listener and destroys every open connection (a crashed instance). */
  kill(): Promise<void>
  /** Listens again on the same port. */
  restart(): Promise<void>
  stop(): Promise<void>
  setHandler(h: Handler): void
}

/** The default answer: a JSON object naming the instance, echoing method and URL. */
export const echo = (name: string): Handler => (req, res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ instance: name, method: req.method, url: req.url, bytes: body.length }))
}

export async function startUpstream(name: string, handler?: Handler, opts: { recordBody?: boolean; port?: number } = {}): Promise<TestUpstream> {
  const port = opts.port ?? (await freePort())
  let h: Handler = handler ?? echo(name)
  const seen: Seen[] = []
  const sockets = new Set<Socket>()
  const make = () => {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      const streaming = opts.recordBody === false
      if (streaming) {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.alloc(0) })
        return h(req, res, Buffer.alloc(0))
      }
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = Buffer.concat(chunks)
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body })
        h(req, res, body)
      })
    })
    server.keepAliveTimeout = 5000
    server.on('connection', (s: Socket) => {
      sockets.add(s)
      s.once('close', () => sockets.delete(s))
    })
    return server
  }
  let server = make()
  const listen = () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  await listen()
  const up: TestUpstream = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    seen,
    server,
    async kill() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
    },
    async restart() {
      server = make()
      up.server = server
      await listen()
    },
    async stop() {
      if (server.listening) await up.kill()
    },
    setHandler(next) {
      h = next
    },
  }
  return up
}

/** A services file in a temp dir; `write` replaces it atomically (as editors do). */
export function servicesFile(doc: unknown, ext: 'json' | 'yaml' = 'json'): { path: string; write(next: unknown | string): void } {
  const dir = tempDir('services')
  const path = join(dir, `services.${ext}`)
  let n = 0
  const write = (next: unknown) => {
    const tmp = join(dir, `.services.${n++}.tmp`)
    writeFileSync(tmp, typeof next === 'string' ? next : JSON.stringify(next, null, 2))
    renameSync(tmp, path)
  }
  write(doc)
  return { path, write }
}

/** An HTTP request to a listening gateway, body collected. */
export async function call(base: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}) {
  const res = await fetch(`${base}${path}`, { method: init.method ?? 'GET', headers: init.headers, body: init.body })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> }
}

/** A request with node:http, which (unlike fetch) sends any header it is given, Connection included. */
export function rawCall(base: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}) {
  return new Promise<{ status: number; headers: IncomingMessage['headers']; text: string }>((resolve, reject) => {
    const req = request(`${base}${path}`, { method: init.method ?? 'GET', headers: init.headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(init.body)
  })
}

export interface ProxyGateway {
  base: string
  gateway: import('../../server/gateway.js').Gateway
  file: { path: string; write(next: unknown): void }
  edge: import('../events/edge-stack.js').EdgeGateway
  stop(): Promise<void>
}

/** A gateway with its edge (events on) serving `doc` as its services file, listening on a free port. */
export async function startProxyGateway(
  natsUrl: string,
  doc: unknown,
  log: import('../../lib/logger.js').Logger,
  overrides: Record<string, unknown> = {},
  listen: { backlog?: number } = {},
): Promise<ProxyGateway> {
  const { startEdgeGateway } = await import('../events/edge-stack.js')
  const { testConfig } = await import('../harness/stack.js')
  const file = servicesFile(doc)
  const config = testConfig(natsUrl, { servicesFile: file.path, servicesPollMs: 100, rateLimitEnabled: false, blocklistEnabled: false, ...overrides })
  const edge = await startEdgeGateway(config, log)
  await edge.gateway.app.listen({ port: 0, host: '127.0.0.1', ...listen })
  const { port } = edge.gateway.app.server.address() as { port: number }
  return { base: `http://127.0.0.1:${port}`, gateway: edge.gateway, file, edge, stop: () => edge.stop() }
}

/** An admin bearer header for the stats routes. */
export async function adminHeader(natsUrl: string): Promise<Record<string, string>> {
  const { createTokenService } = await import('../../lib/auth.js')
  const { testConfig } = await import('../harness/stack.js')
  return { authorization: `Bearer ${createTokenService(testConfig(natsUrl)).sign({ sub: 'ops', role: 'admin' }).token}` }
}
