// One client connection: parses its commands, answers from the cache, forwards the rest, and
// writes replies strictly in request order (a cached reply waits behind an earlier miss). State a
// shared connection cannot hold (protocol, user, db) selects a shared pool; state it cannot even
// express (MULTI, blocking pops, SUBSCRIBE...) moves the client onto a pinned connection of its own.
import type { Socket } from 'node:net'
import { keyIndexes, lookupCommand, unknownCommand, type CommandSpec } from './commands.js'
import { Fill, Slot, WriteSlot, type RefreshInfo } from './fill.js'
import { ruleFor, type CompiledRule } from './policy.js'
import { forwardToPinned, openPinned } from './pinned.js'
import { InputBuffer, ProtocolError, RequestParser, encodeCommand, reply } from './resp.js'
import { Queue, type Identity } from './upstream.js'
import type { CacheProxy, Pool } from './proxy.js'

const SOFT_OUTPUT_BYTES = 1024 * 1024
const RESET = Buffer.from('+RESET\r\n')
const GET = lookupCommand('GET')!

export class Session {
  identity: Identity
  pool: Pool
  closed = false
  private readonly out: Buffer[] = []
  private scope: string
  private name: Buffer | null = null
  private readonly parser: RequestParser
  private readonly slots = new Queue<Slot>()
  private readonly input = new InputBuffer()
  /** Bytes a client sent while its dedicated connection was being opened. */
  private early: Buffer[] = []
  private processing = false
  private suspended = false
  private backlogged = false
  private outPaused = false
  private closing = false
  private pinning = false
  private pinned: Socket | undefined

  constructor(
    readonly core: CacheProxy,
    readonly socket: Socket,
    private readonly index: number,
  ) {
    this.identity = core.defaultIdentity
    this.pool = core.defaultPool
    this.scope = scopeOf(this.identity)
    const limits = core.policy().source.limits
    this.parser = new RequestParser({ maxBulkBytes: limits.maxBulkBytes, maxArgs: 1024 * 1024, maxInlineBytes: 64 * 1024 })
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => undefined)
    socket.on('close', () => this.onClose())
  }

  private onData(chunk: Buffer): void {
    if (this.pinned !== undefined) return this.toPinned(chunk)
    if (this.input.push(chunk)) this.process()
  }

  private blocked(): boolean {
    return this.suspended || this.backlogged || this.outPaused || this.closing || this.pinning || this.closed
  }

  /** Parses and dispatches buffered commands until the buffer is empty or something blocks input. */
  private process(): void {
    if (this.processing) return
    this.processing = true
    const core = this.core
    core.batch.begin()
    try {
      const p = this.parser
      const input = this.input
      while (!this.blocked() && input.pos < input.buf.length) {
        const start = input.pos
        const next = p.parse(input.buf, start, input.buf.length)
        if (next < 0) {
          const limit = core.policy().source.limits.maxRequestBytes
          if (input.buf.length - start > limit || p.need > limit) throw new ProtocolError('Protocol error: request too large')
          input.wait(p.need)
          break
        }
        input.pos = next
        if (p.argc > 0) this.dispatch(p, start, next)
        if (this.slots.length >= core.policy().source.limits.maxPendingCommands) this.backlogged = true
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        core.stats.protocolErrors++
        this.answer(reply.error(`ERR ${err.message}`))
        this.closeAfterReplies()
      } else {
        // A bug must cost this client its connection, not the proxy its process.
        core.log.error({ err }, 'unexpected error handling a client; disconnecting it')
        this.socket.destroy()
        this.onClose()
      }
    } finally {
      core.batch.end()
      this.processing = false
    }
    if (this.closed) return
    if (this.blocked()) {
      if (!this.socket.isPaused()) this.socket.pause()
    } else if (this.socket.isPaused()) this.socket.resume()
  }

  private dispatch(p: RequestParser, start: number, end: number): void {
    const core = this.core
    // GET is most of a cache's traffic: recognise it without making a string of its name.
    const spec = p.argIs(0, 'GET') ? GET : lookupCommand(p.arg(0)) ?? unknownCommand(p.arg(0))
    const policy = core.policy()
    if (policy.refused.size > 0 && policy.refused.has(spec.name)) {
      return this.answer(reply.error(`ERR command '${spec.name}' is refused by the cache proxy policy`))
    }
    switch (spec.kind) {
      case 'read':
        if (spec.cacheable && p.argc > spec.first) return this.read(p, spec, start, end)
        return this.forward(this.frame(p, start, end), new Slot(this))
      case 'write':
        return this.write(p, spec, start, end)
      case 'nokey':
        return this.forward(this.frame(p, start, end), new Slot(this))
      case 'flush':
        core.cache.flush()
        return this.forward(this.frame(p, start, end), new WriteSlot(this, null, this.pool))
      case 'stateful':
        if (spec.name === 'XREAD' || spec.name === 'XREADGROUP') {
          let blocking = false
          for (let i = 1; i < p.argc; i++) if (p.argIs(i, 'BLOCK')) blocking = true
          if (!blocking) return this.forward(this.frame(p, start, end), new Slot(this))
        }
        return this.pin(spec.name, start)
      case 'proxy':
        return this.proxyCommand(p, spec, start, end)
    }
  }

  /** The bytes to send upstream: the client's own for a multibulk, re-encoded for an inline command. */
  private frame(p: RequestParser, start: number, end: number): Buffer {
    return p.inline ? encodeCommand(p.allArgs()) : this.input.buf.subarray(start, end)
  }

  private read(p: RequestParser, spec: CommandSpec, start: number, end: number): void {
    const core = this.core
    const policy = core.policy()
    const firstKey = p.arg(spec.first)
    let rule: CompiledRule | undefined = core.cacheEnabled ? ruleFor(policy, spec.name, firstKey) : undefined
    let redisKeys: string[] | undefined
    if (rule !== undefined && (spec.last !== spec.first || spec.numkeysAt !== 0)) {
      redisKeys = keyIndexes(spec, p.argc, (i) => p.argInt(i)).map((i) => p.arg(i))
      for (const k of redisKeys) {
        const r = ruleFor(policy, spec.name, k)
        if (r === undefined) rule = undefined
        else if (rule !== undefined && r.ttlMs < rule.ttlMs) rule = r
      }
    }
    if (rule === undefined) return this.forward(this.frame(p, start, end), new Slot(this))
    let cacheKey = this.scope + spec.name
    if (p.argc === 2) cacheKey += '\x00' + firstKey
    else for (let i = 1; i < p.argc; i++) cacheKey += '\x01' + p.argLen(i) + ':' + p.arg(i)
    if (policy.source.hotKeys.enabled) core.hot.record(firstKey)
    const now = Date.now()
    const hit = core.cache.get(cacheKey, now)
    if (hit !== undefined) {
      core.stats.hits++
      if (now >= hit.refreshAt && !hit.refreshing && policy.source.hotKeys.enabled && core.hot.isHot(firstKey)) {
        hit.refreshing = true
        core.refresh(hit.cacheKey, hit.redisKeys, hit.refresh as RefreshInfo)
      }
      return this.answer(hit.value)
    }
    core.stats.misses++
    const slot = new Slot(this)
    this.slots.push(slot)
    const inflight = core.inflight.get(cacheKey)
    if (inflight !== undefined) {
      core.stats.coalesced++
      return inflight.wait(slot)
    }
    const conn = this.pool.pick(this.index)
    if (conn === undefined) return slot.fail(this.pool.lastError())
    const frame = Buffer.from(this.frame(p, start, end))
    const fill = new Fill(core, cacheKey, redisKeys ?? [firstKey], rule.ttlMs, conn, frame, this.pool)
    fill.wait(slot)
    conn.send(frame, fill)
  }

  private write(p: RequestParser, spec: CommandSpec, start: number, end: number): void {
    const cache = this.core.cache
    let keys: string | string[] | undefined
    if (spec.first === 1 && spec.last === 1 && spec.numkeysAt === 0) {
      if (p.argc > 1) keys = p.arg(1)
    } else {
      const idx = keyIndexes(spec, p.argc, (i) => p.argInt(i))
      if (idx.length > 0) keys = idx.map((i) => p.arg(i))
    }
    if (keys === undefined) return this.forward(this.frame(p, start, end), new Slot(this))
    if (typeof keys === 'string') cache.invalidate(keys)
    else for (const k of keys) cache.invalidate(k)
    this.forward(this.frame(p, start, end), new WriteSlot(this, keys, this.pool))
  }

  private forward(frame: Buffer, slot: Slot): void {
    this.slots.push(slot)
    const conn = this.pool.pick(this.index)
    if (conn === undefined) return slot.fail(this.pool.lastError())
    conn.send(frame, slot)
  }

  /** Answers now, or behind earlier replies still on their way. */
  private answer(data: Buffer): void {
    if (this.slots.length === 0) return this.send(data)
    const slot = new Slot(this)
    slot.data = data
    this.slots.push(slot)
  }

  /** Sets the reply of a slot and writes every reply that is now next in order. */
  resolve(slot: Slot, data: Buffer): void {
    if (slot.data !== null) return
    slot.data = data
    if (this.slots.peek() !== slot || this.closed) return
    for (let s = this.slots.peek(); s !== undefined && s.data !== null; s = this.slots.peek()) {
      this.slots.shift()
      this.send(s.data)
    }
    if (this.slots.length === 0) this.onIdle()
    else if (this.backlogged && this.slots.length < this.core.policy().source.limits.maxPendingCommands / 2) {
      this.backlogged = false
      this.process()
    }
  }

  private onIdle(): void {
    if (this.closing) return this.end()
    if (this.pinning && this.pinned === undefined) return this.openPinned()
    if (this.backlogged) {
      this.backlogged = false
      this.process()
    }
  }

  private send(data: Buffer): void {
    if (this.closed) return
    if (this.core.batch.depth > 0) {
      // Replies produced in one batch leave in one write: cheaper than a corked writev of many.
      if (this.out.length === 0) this.core.batch.corked.push(this)
      this.out.push(data)
      return
    }
    this.socket.write(data)
    const queued = this.socket.writableLength
    if (queued > SOFT_OUTPUT_BYTES) this.checkOutput(queued)
  }

  /** Writes what the batch collected (called once per batch by WriteBatch). */
  uncork(): void {
    const out = this.out
    if (out.length === 0 || this.closed) {
      out.length = 0
      return
    }
    this.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))
    out.length = 0
    const queued = this.socket.writableLength
    if (queued > SOFT_OUTPUT_BYTES) this.checkOutput(queued)
  }

  private checkOutput(queued: number): void {
    const max = this.core.policy().source.limits.maxClientOutputBytes
    if (queued > max) {
      this.core.stats.outputLimitDisconnects++
      this.core.log.warn({ queued, max }, 'client does not read its replies; disconnecting it')
      this.socket.destroy()
      this.onClose()
      return
    }
    if (!this.outPaused) {
      this.outPaused = true
      this.socket.once('drain', () => {
        this.outPaused = false
        this.process()
      })
    }
  }

  private closeAfterReplies(): void {
    this.closing = true
    if (this.slots.length === 0) this.end()
  }

  private end(): void {
    this.uncork()
    this.socket.end()
  }

  private onClose(): void {
    if (this.closed) return
    this.closed = true
    this.pinned?.destroy()
    this.core.sessionClosed(this)
  }

  /** Moves the client to a connection of its own once every earlier reply has been written. */
  private pin(command: string, start: number): void {
    const core = this.core
    const policy = core.policy()
    if (policy.source.stateful === 'refuse') {
      return this.answer(reply.error(`ERR command '${command}' needs a dedicated connection, which the cache proxy policy refuses`))
    }
    if (core.pinnedCount >= policy.source.limits.maxPinnedClients) {
      return this.answer(reply.error(`ERR too many clients on dedicated connections (flowgate cache proxy limit ${policy.source.limits.maxPinnedClients})`))
    }
    core.pinnedCount++
    this.pinning = true
    this.input.pos = start
    if (this.slots.length === 0) this.openPinned()
  }

  private openPinned(): void {
    const core = this.core
    this.pinned = openPinned({
      host: core.upstream.host,
      port: core.upstream.port,
      identity: this.identity,
      client: this.socket,
      softOutputBytes: SOFT_OUTPUT_BYTES,
      maxOutputBytes: () => core.policy().source.limits.maxClientOutputBytes,
      onReady: (upstream) => {
        this.pinning = false
        const rest = Buffer.concat([this.input.take(), ...this.early])
        this.early = []
        if (rest.length > 0) upstream.write(rest)
        if (this.socket.isPaused()) this.socket.resume()
      },
      onFail: (error) => {
        this.pinned = undefined
        core.pinnedCount--
        this.send(error)
        this.socket.end()
        this.onClose()
      },
      onOverflow: () => {
        core.stats.outputLimitDisconnects++
        this.socket.destroy()
      },
      onClose: () => {
        core.pinnedCount--
        this.pinned = undefined
        this.socket.destroy()
      },
    })
  }

  private toPinned(chunk: Buffer): void {
    if (this.pinning) this.early.push(chunk)
    else forwardToPinned(this.socket, this.pinned!, chunk)
  }

  private proxyCommand(p: RequestParser, spec: CommandSpec, start: number, end: number): void {
    switch (spec.name) {
      case 'HELLO':
        return this.hello(p, start, end)
      case 'AUTH': {
        if (p.argc !== 2 && p.argc !== 3) return this.answer(reply.error("ERR wrong number of arguments for 'auth' command"))
        const user = p.argc === 3 ? p.argBuf(1).toString() : 'default'
        const pass = p.argBuf(p.argc - 1).toString()
        return this.switchIdentity({ ...this.identity, user, pass }, (slot) => this.resolve(slot, reply.ok))
      }
      case 'SELECT': {
        if (p.argc !== 2) return this.answer(reply.error("ERR wrong number of arguments for 'select' command"))
        const db = p.argInt(1)
        if (!Number.isInteger(db) || db < 0 || db > 0x7fffffff) return this.answer(reply.error('ERR value is not an integer or out of range'))
        return this.switchIdentity({ ...this.identity, db }, (slot) => this.resolve(slot, reply.ok))
      }
      case 'QUIT':
        this.answer(reply.ok)
        return this.closeAfterReplies()
      case 'RESET':
        this.identity = this.core.defaultIdentity
        this.pool = this.core.defaultPool
        this.scope = scopeOf(this.identity)
        this.name = null
        return this.answer(RESET)
      case 'CLIENT': {
        if (p.argc >= 3 && p.argIs(1, 'SETNAME')) {
          this.name = Buffer.from(p.argBuf(2))
          return this.answer(reply.ok)
        }
        if (p.argc === 2 && p.argIs(1, 'GETNAME')) return this.answer(reply.bulk(this.name, this.identity.proto))
        if (p.argc >= 2 && (p.argIs(1, 'TRACKING') || p.argIs(1, 'REPLY') || p.argIs(1, 'CACHING'))) return this.pin('CLIENT ' + p.arg(1).toUpperCase(), start)
        return this.forward(this.frame(p, start, end), new Slot(this))
      }
      default:
        return this.cacheCommand(p, spec)
    }
  }

  private hello(p: RequestParser, start: number, end: number): void {
    if (p.argc === 1) return this.forward(this.frame(p, start, end), new Slot(this))
    const proto = p.argInt(1)
    if (!Number.isInteger(proto)) return this.answer(reply.error('ERR Protocol version is not an integer or out of range'))
    if (proto !== 2 && proto !== 3) return this.answer(reply.error('NOPROTO unsupported protocol version'))
    let user = this.identity.user
    let pass = this.identity.pass
    let name: Buffer | null | undefined
    for (let i = 2; i < p.argc; i++) {
      if (p.argIs(i, 'AUTH') && i + 2 < p.argc) {
        user = p.argBuf(i + 1).toString()
        pass = p.argBuf(i + 2).toString()
        i += 2
      } else if (p.argIs(i, 'SETNAME') && i + 1 < p.argc) {
        name = Buffer.from(p.argBuf(++i))
      } else return this.answer(reply.error(`ERR Syntax error in HELLO option '${p.arg(i)}'`))
    }
    this.switchIdentity({ ...this.identity, proto, user, pass }, (slot, pool) => {
      if (name !== undefined) this.name = name
      const conn = pool.pick(this.index)
      if (conn === undefined) return slot.fail(pool.lastError())
      conn.send(encodeCommand(['HELLO', String(proto)]), slot)
    })
  }

  /** Moves the client to the pool of another identity; later commands wait until that is settled. */
  private switchIdentity(next: Identity, onOk: (slot: Slot, pool: Pool) => void): void {
    const slot = new Slot(this)
    this.slots.push(slot)
    this.suspended = true
    this.core
      .getPool(next)
      .then((result) => {
        if (Buffer.isBuffer(result)) return this.resolve(slot, result)
        this.identity = next
        this.pool = result
        this.scope = scopeOf(next)
        onOk(slot, result)
      })
      .catch((err: Error) => this.resolve(slot, reply.error(`ERR ${err.message}`)))
      .finally(() => {
        this.suspended = false
        this.process()
      })
  }

  private cacheCommand(p: RequestParser, spec: CommandSpec): void {
    const core = this.core
    switch (spec.name) {
      case 'CACHE.STATS':
        return this.answer(reply.map(core.statsPairs(), this.identity.proto))
      case 'CACHE.FLUSH':
        core.cache.flush()
        return this.answer(reply.ok)
      case 'CACHE.HOTKEYS': {
        const n = p.argc > 1 ? p.argInt(1) : 10
        if (!(n > 0)) return this.answer(reply.error('ERR value is not an integer or out of range'))
        const top = core.hot.top(Math.min(n, 1000))
        return this.answer(reply.array(top.map((t) => reply.array([reply.bulk(t.key, 2), reply.bulk(t.score.toFixed(2), 2)]))))
      }
      case 'CACHE.TAG': {
        if (p.argc < 3) return this.answer(reply.error("ERR wrong number of arguments for 'cache.tag' command"))
        const args: Array<string | Buffer> = ['SADD', core.policy().source.tags.prefix + p.argBuf(1).toString()]
        for (let i = 2; i < p.argc; i++) args.push(p.argBuf(i))
        return this.forward(encodeCommand(args), new Slot(this))
      }
      case 'CACHE.INVALIDATE': {
        if (p.argc < 2) return this.answer(reply.error("ERR wrong number of arguments for 'cache.invalidate' command"))
        const tags: string[] = []
        for (let i = 1; i < p.argc; i++) tags.push(p.argBuf(i).toString())
        const slot = new Slot(this)
        this.slots.push(slot)
        const conn = this.pool.pick(this.index)
        if (conn === undefined) return slot.fail(this.pool.lastError())
        // Later commands of this client wait, so that a read after the invalidation sees it.
        this.suspended = true
        core
          .invalidateTags(conn, tags)
          .then((n) => this.resolve(slot, reply.integer(n)))
          .catch((err: Error) => this.resolve(slot, reply.error(err.message.startsWith('ERR') || /^[A-Z]+ /.test(err.message) ? err.message : `ERR ${err.message}`)))
          .finally(() => {
            this.suspended = false
            this.process()
          })
        return
      }
    }
    return this.answer(reply.error(`ERR unknown command '${spec.name}'`))
  }
}

function scopeOf(id: Identity): string {
  return `${id.db}|${id.proto}|${id.user ?? ''}|`
}
