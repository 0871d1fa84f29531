// Real WebSocket upstreams (`ws` servers on free ports) for the WebSocket proxy tests: they record
// the handshakes that reached them, echo by default, can be killed (listener closed, every socket
// destroyed) and brought back; plus a client helper that collects what arrives.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { connect as tcpConnect, type Socket } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { freePort } from '../harness/process.js'

export interface WsUpstream {
  name: string
  port: number
  /** http:// URL, as a services file names a target. */
  url: string
  wss: WebSocketServer
  /** Handshakes that reached it. */
  seen: Array<{ url: string; headers: IncomingMessage['headers'] }>
  /** Its side of every socket opened (closed ones included). */
  sockets: WebSocket[]
  open(): number
  kill(): Promise<void>
  restart(): Promise<void>
  stop(): Promise<void>
}

export type OnSocket = (ws: WebSocket, req: IncomingMessage, up: WsUpstream) => void

/** Echoes each message with its type; pings are answered by ws itself unless `autoPong: false`. */
export const echoSocket: OnSocket = (ws) => ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }))

export async function startWsUpstream(
  name: string,
  onSocket: OnSocket = echoSocket,
  opts: { port?: number; handleProtocols?: (p: Set<string>) => string | false; autoPong?: boolean; maxPayload?: number } = {},
): Promise<WsUpstream> {
  const port = opts.port ?? (await freePort())
  const raw = new Set<Socket>()
  let server: Server
  let wss!: WebSocketServer
  const make = () => {
    server = createServer((_req, res) => res.writeHead(426, { 'content-type': 'text/plain' }).end('websocket only'))
    server.on('connection', (s: Socket) => {
      raw.add(s)
      s.once('close', () => raw.delete(s))
    })
    wss = new WebSocketServer({
      server,
      perMessageDeflate: false,
      autoPong: opts.autoPong ?? true,
      ...(opts.maxPayload ? { maxPayload: opts.maxPayload } : {}),
      ...(opts.handleProtocols ? { handleProtocols: opts.handleProtocols } : {}),
    })
    wss.on('connection', (ws, req) => {
      up.seen.push({ url: req.url ?? '', headers: req.headers })
      up.sockets.push(ws)
      ws.on('error', () => {})
      onSocket(ws, req, up)
    })
  }
  const listen = () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const up: WsUpstream = {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    get wss() {
      return wss
    },
    seen: [],
    sockets: [],
    open: () => up.sockets.filter((s) => s.readyState === WebSocket.OPEN).length,
    async kill() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of raw) s.destroy()
      wss.close()
      await closed
    },
    async restart() {
      make()
      await listen()
    },
    async stop() {
      if (server.listening) await up.kill()
    },
  }
  make()
  await listen()
  return up
}

/** A client socket that keeps what arrives, in order. */
export interface Recorder {
  ws: WebSocket
  events: Array<{ kind: 'message'; data: Buffer; binary: boolean } | { kind: 'ping' | 'pong'; data: Buffer } | { kind: 'close'; code: number; reason: string }>
  closed: Promise<{ code: number; reason: string }>
  next(kind?: string): Promise<Recorder['events'][number]>
}

export function record(ws: WebSocket): Recorder {
  const events: Recorder['events'] = []
  let wake: (() => void) | undefined
  const push = (e: Recorder['events'][number]) => {
    events.push(e)
    wake?.()
  }
  ws.on('message', (data: Buffer, binary: boolean) => push({ kind: 'message', data, binary }))
  ws.on('ping', (data: Buffer) => push({ kind: 'ping', data }))
  ws.on('pong', (data: Buffer) => push({ kind: 'pong', data }))
  ws.on('error', () => {})
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code: number, reason: Buffer) => {
      push({ kind: 'close', code, reason: reason.toString() })
      resolve({ code, reason: reason.toString() })
    }),
  )
  let read = 0
  return {
    ws,
    events,
    closed,
    async next(kind) {
      for (;;) {
        while (read < events.length) {
          const e = events[read++]!
          if (kind === undefined || e.kind === kind) return e
        }
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ${kind ?? 'event'} within 10 s (got ${events.map((e) => e.kind).join(',')})`)), 10_000)
          wake = () => {
            clearTimeout(timer)
            wake = undefined
            resolve()
          }
        })
      }
    },
  }
}

/** Opens a client socket; resolves when open (rejects with the HTTP answer when refused). */
export function openWs(url: string, protocols: string[] = [], opts: WebSocket.ClientOptions = {}): Promise<Recorder> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false, ...opts })
    const rec = record(ws)
    ws.once('open', () => resolve(rec))
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() })))
    })
    ws.once('error', reject)
  })
}

/** A raw upgrade: the status line, the headers and the body the gateway answered (for refusals). */
export function rawUpgrade(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; head: string; body: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1')
    const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', '']
    socket.write(lines.join('\r\n'))
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => reject(new Error(`no complete answer within 10 s: ${buf.toString()}`)), 10_000)
    const finish = () => {
      clearTimeout(timer)
      const text = buf.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      const head = text.slice(0, end)
      const body = text.slice(end + 4)
      resolve({ status: Number(text.slice(9, 12)), head, body: /\r\ntransfer-encoding: chunked/i.test(head) ? dechunk(body) : body, socket })
    }
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c])
      const text = buf.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end === -1) return
      if (text.startsWith('HTTP/1.1 101')) return finish()
      const len = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))
      if (len && buf.length >= end + 4 + Number(len[1])) finish()
    })
    socket.on('end', finish)
    socket.on('error', reject)
  })
}

/** Sends raw request bytes and reads until the gateway closes the connection. */
export function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1', () => s.write(request))
    let text = ''
    const timer = setTimeout(() => reject(new Error(`the connection stayed open: ${text}`)), 10_000)
    s.on('data', (c: Buffer) => (text += c.toString()))
    s.on('close', () => (clearTimeout(timer), resolve(text)))
    s.on('error', reject)
  })
}

export const upgradeHeaders = (extra: Record<string, string> = {}) => ({
  Connection: 'Upgrade',
  Upgrade: 'websocket',
  'Sec-WebSocket-Version': '13',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
  ...extra,
})

export const wsUrl = (base: string, path: string) => base.replace(/^http/, 'ws') + path

/** A chunked body's content (the test reads it to the end of the connection). */
function dechunk(text: string): string {
  let out = ''
  let at = 0
  for (;;) {
    const eol = text.indexOf('\r\n', at)
    const size = parseInt(text.slice(at, eol), 16)
    if (!(size > 0)) return out
    out += text.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
}
