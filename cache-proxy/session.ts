// One client connection: parses its commands, answers from the cache, forwards the rest, and
// writes replies strictly in request order (a cached reply waits behind an earlier miss). State a
// shared connection cannot hold (protocol, user, db) selects a shared pool; state it cannot even
// express (MULTI, blocking pops, SUBSCRIBE, its own id and name) moves the client onto a dedicated
// connection. Everything the session acquires (its pin, its request bytes) is given back in
// `teardown`, the one place a session ends.
import type { Socket } from 'node:net'
import { authStep, hasArg, helloStep, refusalOf, scopeOf, selectStep, writtenKeys, type IdentityStep } from './client-state.js'
import { clientSubcommand, lookupCommand, unknownCommand, type CommandSpec } from './commands.js'
import { Fill, WriteSlot } from './fill.js'
import type { PinLease, SessionHost } from './host.js'
import { ReplyOrder, SOFT_OUTPUT_BYTES } from './output.js'
import type { Dedicated } from './pinned.js'
import { PinnedInput } from './pinned-input.js'
import type { Pool } from './pool.js'
import { RequestParser } from './request.js'
import { InputBuffer, ProtocolError, encodeCommand, reply } from './resp.js'
import type { Identity, UpstreamConnection } from './upstream.js'

const RESET = Buffer.from('+RESET\r\n')
const NOTHING = Buffer.alloc(0)
const GET = lookupCommand('GET')!
/** After a protocol error on a dedicated connection, how long the proxy waits for Redis to catch up before closing. */
const CLOSE_GRACE_MS = 1000

type Mode = 'shared' | 'pinning' | 'pinned' | 'unpinning' | 'closing' | 'closed'

export class Session {
  private mode: Mode = 'shared'
  private identity: Identity
  private pool: Pool
  private scope: string
  private readonly replies: ReplyOrder
  /** The shared connection its outstanding commands went to: later ones follow them there, in order. */
  private conn: UpstreamConnection | undefined
  private link: Dedicated | undefined
  private lease: PinLease | undefined
  private readonly parser: RequestParser
  private readonly input = new InputBuffer()
  /** Request bytes counted with the host. */
  private held = 0
  private processing = false
  /** An asynchronous step (identity switch, tag invalidation) holds later commands. */
  private suspended = false
  /** A command that needs every earlier reply out first (pinning, identity switch) waits. */
  private drainWait = false
  private backlogged = false
  /** Dedicated connection: Redis does not keep up with the client's writes. */
  private upstreamPaused = false
  /** Dedicated connection: how the client's commands go to it. */
  private pinnedInput: PinnedInput | undefined
  private closeTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly host: SessionHost,
    readonly socket: Socket,
    private readonly index: number,
  ) {
    this.pool = host.defaultPool
    this.identity = this.pool.identity
    this.scope = scopeOf(this.identity)
    this.replies = new ReplyOrder(host, socket, {
      drained: () => this.onDrained(),
      progressed: (pending) => {
        if (this.backlogged && pending < this.host.policy().source.limits.maxPendingCommands / 2) {
          this.backlogged = false
          this.process()
        }
      },
      writable: () => this.process(),
      overflow: () => this.teardown(),
    })
    const limits = host.policy().source.limits
    this.parser = new RequestParser({ maxBulkBytes: limits.maxBulkBytes, maxArgs: 0x7fffffff, maxInlineBytes: 64 * 1024 })
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => this.teardown())
    socket.on('close', () => this.teardown())
  }

  /** Ends the session at once (the proxy is closing). */
  destroy(): void {
    this.socket.destroy()
    this.teardown()
  }

  private onData(chunk: Buffer): void {
    // After a protocol error the connection closes once its last reply is out; meanwhile what
    // the client still sends is read and dropped, so that a sender never blocks.
    if (this.mode === 'closing' || this.mode === 'closed') return
    const ready = this.input.push(chunk)
    if (!this.account(true)) return
    if (ready) this.process()
  }

  /** Counts buffered request bytes; false (and the client is told and closed) past a bound. */
  private account(grew: boolean): boolean {
    const size = this.input.size
    const total = size === this.held ? this.host.holdRequestBytes(0) : this.host.holdRequestBytes(size - this.held)
    this.held = size
    const limits = this.host.policy().source.limits
    if (size > limits.maxRequestBytes || this.parser.need > limits.maxRequestBytes) {
      this.requestTooLarge(reply.error(`ERR request too large for the cache proxy (over limits.maxRequestBytes, ${limits.maxRequestBytes} bytes)`))
      return false
    }
    if (grew && size > 0 && total > limits.maxTotalRequestBytes) {
      this.requestTooLarge(reply.error(`ERR the cache proxy's request buffers are full (limits.maxTotalRequestBytes, ${limits.maxTotalRequestBytes} bytes)`))
      return false
    }
    return true
  }

  private requestTooLarge(error: Buffer): void {
    this.host.stats.requestLimitDisconnects++
    this.host.log.warn({ buffered: this.input.size }, 'client request over the buffer bound; disconnecting it')
    this.discardInput()
    this.fail(error)
  }

  private discardInput(): void {
    this.input.take()
    this.parser.reset()
    if (this.held !== 0) this.host.holdRequestBytes(-this.held)
    this.held = 0
  }

  private blocked(): boolean {
    return this.mode !== 'shared' || this.suspended || this.drainWait || this.backlogged || this.replies.paused
  }

  /** Parses and handles buffered commands until the buffer is empty or something holds input. */
  private process(): void {
    if (this.processing || this.mode === 'closed' || this.mode === 'closing') return
    this.processing = true
    const batch = this.host.batch
    batch.begin()
    try {
      // A command can move the client between shared and dedicated connections (a spare
      // dedicated connection is ready at once): go on with the rest in the new mode.
      for (let mode = this.mode; ; mode = this.mode) {
        if (mode === 'pinned') this.pinnedInput!.run(this.parser, this.input)
        else if (mode === 'shared') this.processShared()
        if (this.mode === mode) break
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.host.stats.protocolErrors++
        this.discardInput()
        this.fail(reply.error(`ERR ${err.message}`))
      } else {
        // A bug must cost this client its connection, not the proxy its process.
        this.host.log.error({ err }, 'unexpected error handling a client; disconnecting it')
        this.destroy()
      }
    } finally {
      batch.end()
      this.processing = false
    }
    const mode = this.mode as Mode
    if (mode === 'closed') return
    this.account(false)
    // Input waits while the client is held (it is resumed when that ends); a closing client is read and dropped.
    const hold = mode === 'closing' ? false : mode === 'pinned' ? this.suspended || this.upstreamPaused : this.blocked()
    if (hold) {
      if (!this.socket.isPaused()) this.socket.pause()
    } else if (this.socket.isPaused()) this.socket.resume()
  }

  private processShared(): void {
    const p = this.parser
    const input = this.input
    const maxPending = this.host.policy().source.limits.maxPendingCommands
    while (!this.blocked() && input.pos < input.buf.length) {
      const start = input.pos
      const next = p.parse(input.buf, start, input.buf.length)
      if (next < 0) {
        input.wait(p.need)
        break
      }
      input.pos = next
      if (p.argc > 0) this.dispatch(p, start, next)
      if (this.replies.pending >= maxPending) this.backlogged = true
    }
  }

  private dispatch(p: RequestParser, start: number, end: number): void {
    // GET is most of a cache's traffic: recognise it without making a string of its name.
    const spec = p.argIs(0, 'GET') ? GET : (lookupCommand(p.arg(0)) ?? unknownCommand(p.arg(0)))
    const refused = this.refusal(p, spec)
    if (refused !== undefined) return this.replies.answer(refused)
    switch (spec.kind) {
      case 'read':
        if (spec.cacheable && p.argc > spec.first) return this.read(p, spec, start, end)
        return this.forward(this.frame(p, start, end))
      case 'write':
        return this.write(p, spec, start, end)
      case 'nokey':
        return this.forward(this.frame(p, start, end))
      case 'flush':
        this.host.reads.flush()
        return this.forward(this.frame(p, start, end), new WriteSlot(this.replies, this.host.reads, null, this.pool))
      case 'stateful':
        if ((spec.name === 'XREAD' || spec.name === 'XREADGROUP') && !hasArg(p, 'BLOCK')) return this.forward(this.frame(p, start, end))
        return this.pin(spec.name, start)
      case 'proxy':
        return this.proxyCommand(p, spec, start, end)
    }
  }

  /** The policy's refusal of a command as a reply, or undefined when it may run. */
  private refusal(p: RequestParser, spec: CommandSpec): Buffer | undefined {
    const refused = refusalOf(this.host.policy(), p, spec)
    if (refused !== undefined) this.host.stats.refusedCommands++
    return refused
  }

  /** The bytes to send upstream: the client's own for a multibulk, re-encoded for an inline command. */
  private frame(p: RequestParser, start: number, end: number): Buffer {
    return p.inline ? encodeCommand(p.allArgs()) : this.input.buf.subarray(start, end)
  }

  /**
   * The shared connection for the next command. While earlier commands are outstanding it is
   * theirs (Redis runs one connection's commands in order); otherwise one that is not held up.
   */
  private route(): UpstreamConnection | undefined {
    const c = this.conn
    if (this.replies.pending > 0 && c !== undefined && c.usable) return c
    return (this.conn = this.pool.pick(this.index, c))
  }

  private read(p: RequestParser, spec: CommandSpec, start: number, end: number): void {
    const reads = this.host.reads
    const plan = reads.plan(p, spec, this.scope)
    if (plan === undefined) return this.forward(this.frame(p, start, end))
    const { cacheKey, redisKeys, ttlMs } = plan
    const hit = reads.lookup(cacheKey, redisKeys[0]!, Date.now())
    if (hit !== undefined) return this.replies.answer(hit.value)
    const inflight = reads.inflight.get(cacheKey)
    // A read already in flight is shared only when it keeps this client's order: it is not stale
    // (no write was sent since), and this client has nothing outstanding elsewhere.
    if (inflight !== undefined && !inflight.stale && (this.replies.pending === 0 || inflight.conn === this.conn)) {
      this.host.stats.coalesced++
      this.conn = inflight.conn
      return inflight.wait(this.replies.take())
    }
    const conn = this.route()
    const slot = this.replies.take()
    if (conn === undefined) return slot.fail(this.pool.lastError())
    if (inflight !== undefined) return conn.send(this.frame(p, start, end), slot)
    const fill = new Fill(reads, cacheKey, redisKeys, ttlMs, conn, Buffer.from(this.frame(p, start, end)), this.pool)
    fill.wait(slot)
    fill.send()
  }

  private write(p: RequestParser, spec: CommandSpec, start: number, end: number): void {
    const keys = writtenKeys(p, spec)
    if (keys === undefined) return this.forward(this.frame(p, start, end))
    const reads = this.host.reads
    if (typeof keys === 'string') reads.invalidate(keys)
    else for (const k of keys) reads.invalidate(k)
    this.forward(this.frame(p, start, end), new WriteSlot(this.replies, reads, keys, this.pool, (pool, key) => this.host.tagWrite(pool, key)))
  }

  /** Sends a command on the client's shared connection; its reply takes the next place in order. */
  private forward(frame: Buffer, slot?: WriteSlot): void {
    const conn = this.route()
    const place = slot ?? this.replies.take()
    if (slot !== undefined) this.replies.push(slot)
    if (conn === undefined) return place.fail(this.pool.lastError())
    conn.send(frame, place)
  }

  private onDrained(): void {
    if (this.mode === 'closing') return this.closeNow()
    if (this.drainWait || this.backlogged) {
      this.drainWait = false
      this.backlogged = false
      this.process()
    }
  }

  /** Answers `error` after the replies before it, then closes the connection, as Redis does. */
  private fail(error: Buffer): void {
    if (this.mode === 'closed' || this.mode === 'closing') return
    const link = this.link
    const pinned = this.mode === 'pinned' && link !== undefined
    this.mode = 'closing'
    if (this.socket.isPaused()) this.socket.resume()
    if (pinned) {
      link.inject(error, () => this.closeNow())
      // Under CLIENT REPLY OFF Redis answers nothing, not even the injected command.
      this.closeTimer = setTimeout(() => this.closeNow(), CLOSE_GRACE_MS)
      return
    }
    this.replies.answer(error)
    if (this.replies.pending === 0) this.closeNow()
  }

  /** Closes the client once what was written to it is flushed. */
  private closeNow(): void {
    if (this.mode === 'closed') return
    this.replies.close()
    this.teardown()
  }

  /** The one place a session ends: everything it holds goes back. */
  private teardown(): void {
    if (this.mode === 'closed') return
    this.mode = 'closed'
    this.replies.abandon()
    clearTimeout(this.closeTimer)
    const link = this.link
    this.link = undefined
    this.pinnedInput = undefined
    link?.close()
    this.releasePin()
    this.discardInput()
    this.host.sessionClosed(this)
  }

  private releasePin(): void {
    const lease = this.lease
    this.lease = undefined
    lease?.release()
  }

  /** Moves the client to a dedicated connection once every earlier reply is out. */
  private pin(command: string, start: number): void {
    const host = this.host
    const policy = host.policy()
    if (policy.source.stateful === 'refuse') {
      return this.replies.answer(reply.error(`ERR command '${command}' needs a dedicated connection, which the cache proxy policy refuses`))
    }
    if (this.replies.pending > 0) return this.waitForDrain(start)
    const lease = host.acquirePin()
    if (lease === undefined) {
      return this.replies.answer(reply.error(`ERR too many clients on dedicated connections (flowgate cache proxy limit ${policy.source.limits.maxPinnedClients})`))
    }
    this.lease = lease
    // The command is sent again, on the dedicated connection.
    this.input.pos = start
    this.mode = 'pinning'
    const link = this.pool.dedicated()
    this.link = link
    link.whenSetUp((error) => this.pinSetUp(link, error))
  }

  private pinSetUp(link: Dedicated, error: Buffer | null): void {
    if (this.link !== link || this.mode !== 'pinning') return link.close()
    if (error !== null) {
      // The command that needed it gets Redis's refusal (BUSY during a script, say), as it would
      // directly; the client stays on shared connections.
      this.link = undefined
      link.close()
      this.releasePin()
      this.mode = 'shared'
      const next = this.parser.parse(this.input.buf, this.input.pos, this.input.buf.length)
      if (next > 0) this.input.pos = next
      this.replies.answer(error)
      return this.process()
    }
    const maxOutputBytes = () => this.host.policy().source.limits.maxClientOutputBytes
    link.attach({
      client: this.socket,
      softOutputBytes: SOFT_OUTPUT_BYTES,
      maxOutputBytes,
      onOverflow: () => this.replies.overflowed(this.socket.writableLength),
      onClose: () => this.closeNow(),
    })
    this.pinnedInput = new PinnedInput(link, {
      reads: this.host.reads,
      refusal: (p, spec) => this.refusal(p, spec),
      cacheCommand: (name, args, answer) => this.runCacheCommand(name, args, answer),
      canGo: () => this.mode === 'pinned' && !this.suspended && !this.upstreamPaused,
      upstreamFull: () => {
        this.upstreamPaused = true
        link.onDrain(() => {
          this.upstreamPaused = false
          this.process()
        })
      },
      resetting: () => {
        // Redis resets the dedicated connection; once its +RESET is out, the client is back on
        // shared connections with the proxy's own identity, and the dedicated connection closes.
        this.mode = 'unpinning'
        link.inject(NOTHING, () => this.unpin())
      },
    })
    this.mode = 'pinned'
    this.process()
  }

  /** Holds the command at `start` until the replies before it are out. */
  private waitForDrain(start: number): void {
    this.input.pos = start
    this.drainWait = true
  }

  private unpin(): void {
    if (this.mode !== 'unpinning') return
    const link = this.link
    this.link = undefined
    this.pinnedInput = undefined
    link?.close()
    this.releasePin()
    this.setIdentity(this.host.defaultPool)
    this.mode = 'shared'
    this.process()
  }

  private setIdentity(pool: Pool): void {
    this.pool = pool
    this.identity = pool.identity
    this.scope = scopeOf(this.identity)
    this.conn = undefined
  }

  private proxyCommand(p: RequestParser, spec: CommandSpec, start: number, end: number): void {
    switch (spec.name) {
      case 'HELLO':
        return this.identityStep(helloStep(p, this.identity), 'HELLO', p, start, end)
      case 'AUTH':
        return this.identityStep(authStep(p, this.identity), 'AUTH', p, start, end)
      case 'SELECT':
        return this.identityStep(selectStep(p, this.identity), 'SELECT', p, start, end)
      case 'QUIT':
        return this.fail(reply.ok)
      case 'RESET':
        if (this.replies.pending > 0) return this.waitForDrain(start)
        this.setIdentity(this.host.defaultPool)
        return this.replies.answer(RESET)
      case 'CLIENT': {
        if (p.argc < 2) return this.forward(this.frame(p, start, end))
        const action = clientSubcommand(p.argUpper(1))
        if (action === 'pin') return this.pin(`CLIENT ${p.argUpper(1)}`, start)
        // A client on shared connections has named nothing (CLIENT SETNAME moves it to its own).
        if (action === 'getname' && p.argc === 2) return this.replies.answer(reply.bulk(null, this.identity.proto))
        return this.forward(this.frame(p, start, end))
      }
      default: {
        const args = p.allArgs().map((a) => Buffer.from(a))
        return this.runCacheCommand(spec.name, args, (answer) => this.replies.answer(answer))
      }
    }
  }

  private identityStep(step: IdentityStep, name: string, p: RequestParser, start: number, end: number): void {
    if (step.kind === 'forward') return this.forward(this.frame(p, start, end))
    if (step.kind === 'pin') return this.pin(name, start)
    if (this.replies.pending > 0) return this.waitForDrain(start)
    this.switchIdentity(step.next, step.confirm ? Buffer.from(this.frame(p, start, end)) : null, step.ok)
  }

  /**
   * Moves the client to the pool of another identity; later commands wait until that is settled.
   * `confirm` (the client's AUTH or HELLO) runs on a connection of that pool and its reply decides;
   * without it, the pool's setup decides and `ok` is the answer.
   */
  private switchIdentity(next: Identity, confirm: Buffer | null, ok: Buffer | null): void {
    const slot = this.replies.take()
    this.suspended = true
    const done = (data: Buffer, pool: Pool | undefined) => {
      if (pool !== undefined) this.setIdentity(pool)
      this.suspended = false
      this.replies.resolve(slot, data)
      this.process()
    }
    this.host.pool(next).then(
      (pool) => {
        if (Buffer.isBuffer(pool)) return done(pool, undefined)
        if (confirm === null) return done(ok!, pool)
        const conn = pool.pick(this.index)
        if (conn === undefined) return done(pool.lastError(), undefined)
        conn.send(confirm, {
          reply: (b, s, e) => done(Buffer.from(b.subarray(s, e)), b[s] === 45 || b[s] === 33 ? undefined : pool),
          fail: (error) => done(error, undefined),
        })
      },
      (err: Error) => done(reply.error(`ERR ${err.message}`), undefined),
    )
  }

  /** CACHE.* commands; one that waits on Redis (tags) holds the client's later commands until it is done. */
  private runCacheCommand(name: string, args: Buffer[], answer: (reply: Buffer) => void): void {
    const result = this.host.cacheCommand(name, args, { proto: this.identity.proto, pool: this.pool, hint: this.index })
    if (Buffer.isBuffer(result)) return answer(result)
    this.suspended = true
    void result.then((data) => {
      this.suspended = false
      if (this.mode === 'closed') return
      answer(data)
      this.process()
    })
  }
}
