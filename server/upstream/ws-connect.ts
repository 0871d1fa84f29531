// The upstream side of a WebSocket handshake: one attempt on one target with the `ws` client,
// bounded by connectMs (TCP) and tryMs (the whole handshake). It settles once: open (with the
// subprotocol the upstream picked and its 101 headers), an HTTP answer instead of 101 (passed on to
// the client as it is), or a failure the caller maps to 502/504 and counts against the target.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import type { UpstreamSpec } from './spec.js'

export type Handshake =
  /** Open and paused: resume it once its listeners are on. */
  | { ok: true; ws: WebSocket; protocol: string; headers: IncomingHttpHeaders }
  | { ok: false; failure: 'answer'; res: IncomingMessage }
  | { ok: false; failure: 'timeout' | 'connect' | 'broken' | 'aborted'; message: string }

export interface HandshakeOptions {
  /** Subprotocols the client offered (the token one taken out). */
  protocols: readonly string[]
  headers: Record<string, string | string[]>
  connectMs: number
  tryMs: number
  maxPayload: number
  tls: UpstreamSpec['tls']
}

export interface HandshakeAttempt {
  readonly done: Promise<Handshake>
  /** The client went away: give up (settles as `aborted`). */
  abort(): void
}

export function connectUpstream(url: string, opts: HandshakeOptions): HandshakeAttempt {
  let settle!: (h: Handshake) => void
  let settled = false
  const done = new Promise<Handshake>((resolve) => (settle = resolve))
  let connectTimer: NodeJS.Timeout | undefined
  let timedOut = false
  const headers = opts.protocols.length > 0 ? { ...opts.headers, 'sec-websocket-protocol': opts.protocols.join(', ') } : opts.headers
  const tls = opts.tls === undefined ? {} : { rejectUnauthorized: !opts.tls.insecure, ...(opts.tls.ca ? { ca: opts.tls.ca } : {}), ...(opts.tls.serverName ? { servername: opts.tls.serverName } : {}) }
  const options: WebSocket.ClientOptions = {
    // ws hands them to http.request, which takes a repeated field as an array; its types say string.
    headers: headers as Record<string, string>,
    perMessageDeflate: false,
    maxPayload: opts.maxPayload,
    // Pings are relayed end to end, not answered by the gateway.
    autoPong: false,
    followRedirects: false,
    ...tls,
    finishRequest(req) {
      req.once('socket', (socket) => {
        if (!socket.connecting) return
        connectTimer = setTimeout(() => {
          timedOut = true
          req.destroy(new Error(`no connection within ${opts.connectMs} ms`))
        }, opts.connectMs)
        socket.once('connect', () => clearTimeout(connectTimer))
      })
      req.end()
    },
  }
  let ws: WebSocket
  try {
    ws = new WebSocket(url, options)
  } catch (err) {
    // A URL or header the client refuses outright (a fragment in the path, say): a broken attempt.
    return { done: Promise.resolve({ ok: false, failure: 'broken', message: (err as Error).message.slice(0, 200) }), abort() {} }
  }
  // Errors after the handshake belong to the relay; one listener here keeps an early one from throwing.
  ws.on('error', noop)
  const tryTimer = setTimeout(() => {
    timedOut = true
    ws.terminate()
  }, opts.tryMs)
  const finish = (h: Handshake) => {
    if (settled) return
    settled = true
    clearTimeout(tryTimer)
    clearTimeout(connectTimer)
    settle(h)
  }
  let picked: string | undefined
  let upgradeHeaders: IncomingHttpHeaders = {}
  ws.once('upgrade', (res: IncomingMessage) => {
    // The ws client insists that a server pick one of the offered subprotocols; RFC 6455 §4.1 lets
    // it pick none (a browser accepts that). The pick is taken out of its sight and checked here.
    const header = res.headers['sec-websocket-protocol']
    picked = header
    delete res.headers['sec-websocket-protocol']
    upgradeHeaders = res.headers
  })
  ws.once('open', () => {
    // Held until the relay listens: a frame that came with the 101 would be read on the next tick,
    // before the promise below lets anyone attach a listener.
    ws.pause()
    if (picked !== undefined && !opts.protocols.includes(picked)) {
      ws.terminate()
      return finish({ ok: false, failure: 'broken', message: 'the upstream picked a subprotocol that was not offered' })
    }
    finish({ ok: true, ws, protocol: picked ?? '', headers: upgradeHeaders })
  })
  ws.once('unexpected-response', (_req: unknown, res: IncomingMessage) => finish({ ok: false, failure: 'answer', res }))
  ws.once('error', (err: Error & { code?: string }) => {
    if (timedOut) return finish({ ok: false, failure: 'timeout', message: `no handshake within ${opts.tryMs} ms` })
    const code = err.code ?? ''
    // A connection refused or reset is `connect` (retried elsewhere); a broken handshake is `broken`.
    const broken = code === '' || code.startsWith('HPE_') || code.startsWith('WS_ERR_')
    finish({ ok: false, failure: broken ? 'broken' : 'connect', message: err.message.slice(0, 200) })
  })
  return {
    done,
    abort() {
      if (settled) return
      finish({ ok: false, failure: 'aborted', message: 'the client went away' })
      ws.terminate()
    },
  }
}

function noop() {}
