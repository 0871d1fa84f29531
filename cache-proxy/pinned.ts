// A dedicated upstream connection for a client whose commands hold connection state (MULTI,
// blocking pops, SUBSCRIBE, CLIENT ID...). It is given the client's identity first (AUTH, HELLO 3,
// SELECT) and may wait ready as a spare; once attached, Redis's bytes flow to the client untouched,
// with backpressure and the client's output bound.
//
// The reply stream of such a connection cannot be matched to commands (SUBSCRIBE has several
// replies, MONITOR endless ones, CLIENT REPLY OFF none), so when the proxy must answer something
// itself in the middle of it (a refused command, a proxy command, the end of the connection after
// a protocol error), it sends Redis an unknown command carrying a sequence number and puts its own
// answer where Redis's "unknown command" error for it comes back. Redis answers that error in
// order in every state (inside MULTI it also aborts the transaction, as a refused command should;
// under CLIENT REPLY OFF it answers nothing, and so does the proxy).
import { connect, type Socket } from 'node:net'
import { InputBuffer, ProtocolError, encodeCommand, reply, scanNeed, scanReply } from './resp.js'

export interface DedicatedOptions {
  host: string
  port: number
  /** Commands giving the connection the client's identity; an error reply to one fails the setup. */
  init: Buffer[]
  connectTimeoutMs: number
  /** Redis must answer the setup within this (a hung Redis costs the client an error, not a wait forever). */
  setupTimeoutMs: number
  /** Random per proxy, so that a client cannot forge the proxy's injected commands. */
  markerToken: string
}

/** Where an attached connection's replies go. */
export interface RelayTarget {
  client: Socket
  softOutputBytes: number
  maxOutputBytes(): number
  /** The client passed its output bound. */
  onOverflow(): void
  /** Redis closed the connection (QUIT, CLIENT KILL, a restart). */
  onClose(): void
}

interface Marker {
  seq: number
  answer: Buffer
  then: (() => void) | undefined
}

const unavailable = (why: string) => reply.error(`ERR upstream unavailable (flowgate cache proxy): ${why}`)
const LOST = reply.error('ERR upstream connection lost (flowgate cache proxy)')

export class Dedicated {
  private state: 'setup' | 'idle' | 'attached' | 'closed' = 'setup'
  private readonly socket: Socket
  private setupResult: Buffer | null | undefined
  private readonly setupWaiters: Array<(error: Buffer | null) => void> = []
  private initLeft: number
  private readonly input = new InputBuffer()
  private lastError: Buffer | undefined
  private idleClose: (() => void) | undefined
  private target: RelayTarget | undefined
  private readonly markers: Marker[] = []
  private seq = 0
  private readonly markerPrefix: Buffer
  private setupTimer: NodeJS.Timeout | undefined

  constructor(private readonly opts: DedicatedOptions) {
    this.markerPrefix = Buffer.from(`-ERR unknown command 'FLOWGATE.SYNC.${opts.markerToken}.`, 'latin1')
    const socket = connect({ host: opts.host, port: opts.port, noDelay: true })
    this.socket = socket
    this.initLeft = opts.init.length
    socket.setTimeout(opts.connectTimeoutMs, () => socket.destroy(new Error('connect timeout')))
    socket.once('connect', () => {
      socket.setTimeout(0)
      socket.setKeepAlive(true, 10_000)
      if (this.initLeft === 0) this.setUp(null)
    })
    for (const f of opts.init) socket.write(f)
    this.setupTimer = setTimeout(() => this.setUp(unavailable(`no answer to the connection setup within ${opts.setupTimeoutMs} ms`)), opts.setupTimeoutMs)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err) => {
      this.lastError = unavailable(err.message)
    })
    socket.on('close', () => this.onClose())
  }

  /** Calls back once the identity is set up: null, or the error reply for the client. */
  whenSetUp(cb: (error: Buffer | null) => void): void {
    if (this.setupResult !== undefined) cb(this.setupResult)
    else this.setupWaiters.push(cb)
  }

  /** Called when the connection closes while it waits as a spare. */
  onIdleClose(cb: () => void): void {
    this.idleClose = cb
  }

  /** Hands the set-up connection to a client: from now on Redis's bytes go to `target`. */
  attach(target: RelayTarget): void {
    if (this.state !== 'idle') throw new Error(`cannot attach a dedicated connection in state ${this.state}`)
    this.state = 'attached'
    this.idleClose = undefined
    this.target = target
  }

  get attached(): boolean {
    return this.state === 'attached'
  }

  /** Client bytes to Redis; false when Redis does not keep up (wait for `onDrain`). */
  send(bytes: Buffer): boolean {
    return this.socket.write(bytes)
  }

  onDrain(cb: () => void): void {
    this.socket.once('drain', cb)
  }

  /**
   * Puts `answer` into the client's reply stream after the replies of everything sent so far,
   * then runs `then` (see the top of this file).
   */
  inject(answer: Buffer, then?: () => void): void {
    const seq = ++this.seq
    this.markers.push({ seq, answer, then })
    this.socket.write(encodeCommand([`FLOWGATE.SYNC.${this.opts.markerToken}.${seq}`]))
  }

  close(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.socket.destroy()
  }

  private setUp(result: Buffer | null): void {
    if (this.setupResult !== undefined) return
    clearTimeout(this.setupTimer)
    this.setupResult = result
    if (result !== null) this.close()
    else if (this.state === 'setup') this.state = 'idle'
    for (const cb of this.setupWaiters.splice(0)) cb(result)
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'attached') return this.relay(chunk)
    if (this.state !== 'setup') return
    if (!this.input.push(chunk)) return
    const buf = this.input.buf
    let pos = this.input.pos
    try {
      while (this.initLeft > 0) {
        const next = scanReply(buf, pos, buf.length)
        if (next < 0) {
          this.input.pos = pos
          this.input.wait(scanNeed)
          return
        }
        if (buf[pos] === 45 || buf[pos] === 33) return this.setUp(Buffer.from(buf.subarray(pos, next)))
        pos = next
        this.initLeft--
      }
    } catch {
      return this.setUp(unavailable('protocol error from redis'))
    }
    this.input.take()
    this.setUp(null)
  }

  /** Redis's bytes to the client, with the proxy's injected answers put in place. */
  private relay(chunk: Buffer): void {
    if (this.markers.length === 0 && this.input.size === 0) return this.toClient(chunk)
    if (!this.input.push(chunk)) return
    const buf = this.input.buf
    let pos = this.input.pos
    let from = pos
    while (pos < buf.length) {
      let next: number
      try {
        next = scanReply(buf, pos, buf.length)
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err
        // Not RESP: nothing more can be matched; pass it on as Redis wrote it.
        this.markers.length = 0
        this.input.take()
        return this.toClient(buf.subarray(from))
      }
      if (next < 0) {
        this.input.wait(scanNeed)
        break
      }
      const seq = buf[pos] === 45 ? this.markerSeq(buf, pos, next) : -1
      if (seq >= 0) {
        if (from < pos) this.toClient(buf.subarray(from, pos))
        from = next
        this.input.pos = next
        const m = this.answer(seq)
        m?.then?.()
        if (this.state !== 'attached') return
      }
      pos = next
    }
    if (from < pos) this.toClient(buf.subarray(from, pos))
    this.input.pos = pos
  }

  /** The sequence number of an injected command's error reply at buf[pos..end), or -1. */
  private markerSeq(buf: Buffer, pos: number, end: number): number {
    const prefix = this.markerPrefix
    if (end - pos <= prefix.length || buf.compare(prefix, 0, prefix.length, pos, pos + prefix.length) !== 0) return -1
    let seq = 0
    for (let p = pos + prefix.length; p < end; p++) {
      const c = buf[p]!
      if (c === 39) return seq
      if (c < 48 || c > 57) return -1
      seq = seq * 10 + (c - 48)
    }
    return -1
  }

  /** Writes the answer of marker `seq`; markers before it got no reply (CLIENT REPLY OFF/SKIP) and are dropped. */
  private answer(seq: number): Marker | undefined {
    while (this.markers.length > 0 && this.markers[0]!.seq < seq) this.markers.shift()!.then?.()
    if (this.markers.length === 0 || this.markers[0]!.seq !== seq) return undefined
    const m = this.markers.shift()!
    if (m.answer.length > 0) this.toClient(m.answer)
    return m
  }

  private toClient(bytes: Buffer): void {
    const t = this.target!
    t.client.write(bytes)
    const queued = t.client.writableLength
    if (queued > t.maxOutputBytes()) t.onOverflow()
    else if (queued > t.softOutputBytes && !this.socket.isPaused()) {
      this.socket.pause()
      t.client.once('drain', () => this.socket.resume())
    }
  }

  private onClose(): void {
    const was = this.state
    this.state = 'closed'
    if (was === 'setup') return this.setUp(this.lastError ?? LOST)
    if (was === 'idle') return this.idleClose?.()
    if (was === 'attached') {
      // Answers still owed (a protocol error's close, say) are given before the client goes.
      for (const m of this.markers.splice(0)) {
        if (m.answer.length > 0) this.target!.client.write(m.answer)
      }
      this.target!.onClose()
    }
  }
}
