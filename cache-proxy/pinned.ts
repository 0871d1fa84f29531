// A dedicated upstream connection for a client whose commands hold connection state (MULTI,
// blocking pops, SUBSCRIBE...). It is given the client's identity first (HELLO/AUTH, SELECT);
// after that, bytes flow both ways untouched, with backpressure and the client output bound.
import { connect, type Socket } from 'node:net'
import { reply, scanReply } from './resp.js'
import { identityInit, type Identity } from './upstream.js'

export interface PinnedOptions {
  host: string
  port: number
  identity: Identity
  client: Socket
  softOutputBytes: number
  maxOutputBytes: () => number
  /** Redis accepted the identity: write what the client sent since, then pipe. */
  onReady(upstream: Socket): void
  /** Redis refused the identity or could not be reached; `error` is a RESP error for the client. */
  onFail(error: Buffer): void
  /** The client passed its output bound. */
  onOverflow(): void
  /** The dedicated connection closed after it was ready. */
  onClose(): void
}

export function openPinned(o: PinnedOptions): Socket {
  const upstream = connect({ host: o.host, port: o.port, noDelay: true })
  const init = identityInit(o.identity)
  for (const f of init) upstream.write(f)
  let initBuf: Buffer = Buffer.alloc(0)
  let left = init.length
  let state: 'init' | 'ready' | 'done' = 'init'
  const fail = (error: Buffer) => {
    if (state !== 'init') return
    state = 'done'
    upstream.destroy()
    o.onFail(error)
  }
  const ready = () => {
    state = 'ready'
    o.onReady(upstream)
  }
  upstream.on('data', (chunk: Buffer) => {
    if (state === 'init') {
      initBuf = initBuf.length ? Buffer.concat([initBuf, chunk]) : chunk
      let pos = 0
      while (left > 0) {
        const next = scanReply(initBuf, pos, initBuf.length)
        if (next < 0) return
        if (initBuf[pos] === 45) return fail(Buffer.from(initBuf.subarray(pos, next)))
        pos = next
        left--
      }
      chunk = initBuf.subarray(pos)
      ready()
      if (chunk.length === 0) return
    }
    o.client.write(chunk)
    const queued = o.client.writableLength
    if (queued > o.maxOutputBytes()) o.onOverflow()
    else if (queued > o.softOutputBytes && !upstream.isPaused()) {
      upstream.pause()
      o.client.once('drain', () => upstream.resume())
    }
  })
  upstream.on('error', (err) => fail(reply.error(`ERR upstream unavailable (flowgate cache proxy): ${err.message}`)))
  upstream.on('close', () => {
    if (state === 'init') fail(reply.error('ERR upstream connection lost (flowgate cache proxy)'))
    else if (state === 'ready') {
      state = 'done'
      o.onClose()
    }
  })
  if (left === 0) upstream.once('connect', ready)
  return upstream
}

/** Client bytes to the pinned connection, pausing the client while Redis does not keep up. */
export function forwardToPinned(client: Socket, upstream: Socket, chunk: Buffer): void {
  if (!upstream.write(chunk)) {
    client.pause()
    upstream.once('drain', () => client.resume())
  }
}
