// RESP framing for the proxy. Requests are parsed into argument offsets over the receive buffer
// (no copies, no per-argument allocation); replies are only *scanned* for their end so that their
// raw bytes can be forwarded unchanged. A full decoder exists for the few replies the proxy reads
// itself (tracking messages, tag scripts, HELLO). Error texts match Redis's own.

const CR = 13
const LF = 10

// Buffer#latin1Slice is what toString('latin1') ends up calling, minus the encoding dispatch; it
// is untyped in @types/node, hence the cast. Latin-1 maps each byte to one char: binary-safe keys.
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Buffer, start: number, end: number): string }).latin1Slice
export const latin1 = (buf: Buffer, start: number, end: number): string => latin1Slice.call(buf, start, end)

/** Bad bytes from a peer; the connection that sent them is closed after the reply. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ProtocolError'
  }
}

export interface RequestLimits {
  /** Largest bulk argument (Redis: proto-max-bulk-len). */
  maxBulkBytes: number
  /** Most arguments in one command (Redis 7: INT_MAX). */
  maxArgs: number
  /** Longest inline command or header line without a newline (Redis: 64 KiB). */
  maxInlineBytes: number
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = { maxBulkBytes: 512 * 1024 * 1024, maxArgs: 0x7fffffff, maxInlineBytes: 64 * 1024 }

/**
 * The end of a header line as Redis finds it: `strchr(p, '\r')`, which also stops at a NUL byte,
 * so a line with a NUL before its CR is never complete (and ends as "too big ... count string").
 * Returns the offset of the CR, or -1 when the line is not complete yet.
 */
function findCR(buf: Buffer, p: number, end: number): number {
  for (; p < end; p++) {
    const c = buf[p]!
    if (c === CR) return p + 1 < end ? p : -1
    if (c === 0) return -1
  }
  return -1
}

/** Redis's string2ll over buf[s..e): an optional '-', then digits without a leading zero; NaN otherwise. */
function string2ll(buf: Buffer, s: number, e: number): number {
  if (s >= e) return NaN
  let neg = false
  if (buf[s] === 45) {
    neg = true
    if (++s >= e) return NaN
  }
  if (buf[s] === 48) return e - s === 1 && !neg ? 0 : NaN
  let v = 0
  for (let p = s; p < e; p++) {
    const c = buf[p]!
    if (c < 48 || c > 57) return NaN
    v = v * 10 + (c - 48)
    // Past 2^53 the value is only compared against limits far below it.
    if (v > Number.MAX_SAFE_INTEGER) return neg ? -Infinity : Infinity
  }
  return neg ? -v : v
}

/**
 * Incremental request parser, following Redis's own (networking.c, processMultibulkBuffer and
 * processInlineBuffer) so that the bytes it accepts are exactly the bytes Redis accepts: a
 * forwarded frame never desynchronises a shared connection. `parse(buf, pos, end)` reads one
 * command starting at `pos` and returns the offset after it, or -1 when more bytes are needed
 * (`need` then says how many bytes from `pos` the frame needs at least). After -1, the next call
 * must start at the same frame (moved or not): the parser resumes where it stopped instead of
 * reading the frame again, so a large request of small arguments costs linear time. The
 * arguments of the last command stay readable until the next call.
 */
export class RequestParser {
  argc = 0
  /** true when the last command came inline (its args are in `inlineArgs`). */
  inline = false
  need = 0
  buf: Buffer = Buffer.alloc(0)
  private frame = 0
  /** Argument offsets relative to the frame start, so that a moved frame resumes correctly. */
  private starts = new Int32Array(16)
  private ends = new Int32Array(16)
  private inlineArgs: Buffer[] = []
  /** A multibulk frame parsed in part: its argument count, the arguments read, and where to go on. */
  private pending: { count: number; done: number; offset: number } | null = null

  constructor(private readonly limits: RequestLimits = DEFAULT_REQUEST_LIMITS) {}

  /** Forgets a frame parsed in part (its bytes were dropped). */
  reset(): void {
    this.pending = null
    this.need = 0
  }

  parse(buf: Buffer, pos: number, end: number): number {
    this.buf = buf
    this.need = 0
    if (pos >= end) return -1
    if (buf[pos] !== 42) {
      this.pending = null
      return this.parseInline(buf, pos, end)
    }
    this.inline = false
    let count: number
    let i: number
    let p: number
    if (this.pending !== null) {
      ;({ count, done: i, offset: p } = this.pending)
      p += pos
      this.pending = null
    } else {
      const cr = findCR(buf, pos + 1, end)
      if (cr < 0) {
        if (end - pos > this.limits.maxInlineBytes) throw new ProtocolError('Protocol error: too big mbulk count string')
        return -1
      }
      count = string2ll(buf, pos + 1, cr)
      if (Number.isNaN(count) || count > this.limits.maxArgs) throw new ProtocolError('Protocol error: invalid multibulk length')
      p = cr + 2
      if (count <= 0) {
        this.argc = 0
        return p
      }
      i = 0
    }
    for (; i < count; i++) {
      const cr = findCR(buf, p, end)
      if (cr < 0) {
        if (end - p > this.limits.maxInlineBytes) throw new ProtocolError('Protocol error: too big bulk count string')
        return this.suspend(count, i, p, pos)
      }
      if (buf[p] !== 36) throw new ProtocolError(`Protocol error: expected '$', got '${String.fromCharCode(buf[p]!)}'`)
      const len = string2ll(buf, p + 1, cr)
      if (Number.isNaN(len) || len < 0 || len > this.limits.maxBulkBytes) throw new ProtocolError('Protocol error: invalid bulk length')
      const data = cr + 2
      // Like Redis, the two bytes after the data are skipped, not checked.
      if (data + len + 2 > end) {
        this.need = data + len + 2 - pos
        return this.suspend(count, i, p, pos)
      }
      if (i >= this.starts.length) this.grow(Math.min(count, this.starts.length * 2))
      this.starts[i] = data - pos
      this.ends[i] = data + len - pos
      p = data + len + 2
    }
    this.frame = pos
    this.argc = count
    return p
  }

  private suspend(count: number, done: number, p: number, pos: number): number {
    this.pending = { count, done, offset: p - pos }
    return -1
  }

  private grow(size: number): void {
    const starts = new Int32Array(size)
    const ends = new Int32Array(size)
    starts.set(this.starts)
    ends.set(this.ends)
    this.starts = starts
    this.ends = ends
  }

  private parseInline(buf: Buffer, pos: number, end: number): number {
    // strchr(p, '\n'): a NUL byte ends the search too.
    let nl = -1
    for (let p = pos; p < end; p++) {
      const c = buf[p]!
      if (c === LF) {
        nl = p
        break
      }
      if (c === 0) break
    }
    if (nl === -1) {
      if (end - pos > this.limits.maxInlineBytes) throw new ProtocolError('Protocol error: too big inline request')
      return -1
    }
    const lineEndAt = nl > pos && buf[nl - 1] === CR ? nl - 1 : nl
    this.inline = true
    this.inlineArgs = splitArgs(buf, pos, lineEndAt)
    this.argc = this.inlineArgs.length
    return nl + 1
  }

  /** Argument i as a Buffer view (no copy for multibulk). */
  argBuf(i: number): Buffer {
    return this.inline ? this.inlineArgs[i]! : this.buf.subarray(this.frame + this.starts[i]!, this.frame + this.ends[i]!)
  }

  /** Argument i as a latin1 string (binary-safe: one char per byte). */
  arg(i: number): string {
    return this.inline ? latin1(this.inlineArgs[i]!, 0, this.inlineArgs[i]!.length) : latin1(this.buf, this.frame + this.starts[i]!, this.frame + this.ends[i]!)
  }

  argLen(i: number): number {
    return this.inline ? this.inlineArgs[i]!.length : this.ends[i]! - this.starts[i]!
  }

  /** Argument i compared case-insensitively to an upper-case ASCII word, without allocating. */
  argIs(i: number, upper: string): boolean {
    if (this.argLen(i) !== upper.length) return false
    const b = this.inline ? this.inlineArgs[i]! : this.buf
    const s = this.inline ? 0 : this.frame + this.starts[i]!
    for (let k = 0; k < upper.length; k++) if ((b[s + k]! & 0xdf) !== upper.charCodeAt(k)) return false
    return true
  }

  /** Argument i upper-cased (ASCII), for subcommand names. */
  argUpper(i: number): string {
    return this.arg(i).toUpperCase()
  }

  /** Argument i as an integer, or NaN. */
  argInt(i: number): number {
    const s = this.arg(i)
    return /^-?\d{1,15}$/.test(s) ? Number(s) : NaN
  }

  allArgs(): Buffer[] {
    const out: Buffer[] = []
    for (let i = 0; i < this.argc; i++) out.push(this.argBuf(i))
    return out
  }
}

const HEX = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)

/** Splits an inline command like Redis's sdssplitargs: spaces, "double" quotes with escapes, 'single' quotes. */
export function splitArgs(buf: Buffer, pos: number, end: number): Buffer[] {
  const out: Buffer[] = []
  let p = pos
  const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12
  for (;;) {
    while (p < end && isSpace(buf[p]!)) p++
    if (p >= end) return out
    const cur: number[] = []
    let inDq = false
    let inSq = false
    for (;;) {
      if (inDq) {
        if (p >= end) throw new ProtocolError('Protocol error: unbalanced quotes in request')
        const c = buf[p]!
        if (c === 92 && p + 3 < end && buf[p + 1] === 120 && HEX(buf[p + 2]!) && HEX(buf[p + 3]!)) {
          cur.push(parseInt(String.fromCharCode(buf[p + 2]!, buf[p + 3]!), 16))
          p += 3
        } else if (c === 92 && p + 1 < end) {
          p++
          const e = buf[p]!
          cur.push(e === 110 ? 10 : e === 114 ? 13 : e === 116 ? 9 : e === 98 ? 8 : e === 97 ? 7 : e)
        } else if (c === 34) {
          if (p + 1 < end && !isSpace(buf[p + 1]!)) throw new ProtocolError('Protocol error: unbalanced quotes in request')
          inDq = false
          p++
          break
        } else cur.push(c)
        p++
      } else if (inSq) {
        if (p >= end) throw new ProtocolError('Protocol error: unbalanced quotes in request')
        const c = buf[p]!
        if (c === 92 && p + 1 < end && buf[p + 1] === 39) {
          cur.push(39)
          p++
        } else if (c === 39) {
          if (p + 1 < end && !isSpace(buf[p + 1]!)) throw new ProtocolError('Protocol error: unbalanced quotes in request')
          inSq = false
          p++
          break
        } else cur.push(c)
        p++
      } else {
        if (p >= end) break
        const c = buf[p]!
        if (isSpace(c)) break
        if (c === 34) inDq = true
        else if (c === 39) inSq = true
        else cur.push(c)
        p++
      }
    }
    out.push(Buffer.from(cur))
  }
}

/** Reads a decimal terminated by CRLF at buf[p..end) in a reply header; -2 when incomplete. Sets lineEnd. */
function readLineInt(buf: Buffer, p: number, end: number, what: string, max: number): number {
  let v = 0
  let neg = false
  let digits = 0
  const start = p
  if (p < end && buf[p] === 45) {
    neg = true
    p++
  }
  for (; p < end; p++) {
    const c = buf[p]!
    if (c === CR) {
      if (p + 1 >= end) return -2
      if (buf[p + 1] !== LF || digits === 0) throw new ProtocolError(`Protocol error: invalid ${what} length`)
      lineEnd = p + 2
      return neg ? -v : v
    }
    if (c < 48 || c > 57 || (digits === 1 && v === 0)) throw new ProtocolError(`Protocol error: invalid ${what} length`)
    v = v * 10 + (c - 48)
    digits++
    if (v > max && !(neg && v === 1)) throw new ProtocolError(`Protocol error: invalid ${what} length`)
  }
  if (p - start > 64 * 1024) throw new ProtocolError(`Protocol error: too big ${what} count string`)
  return -2
}
let lineEnd = 0

/**
 * Finds the end of one RESP2/RESP3 reply at buf[pos..end) without decoding it. Returns the offset
 * after it, or -1 when incomplete. Nesting costs nothing: a single counter of values still to read
 * replaces recursion, so 10,000 levels are as cheap as one.
 */
export function scanReply(buf: Buffer, pos: number, end: number, maxBulkBytes = 1024 * 1024 * 1024): number {
  let todo = 1
  let p = pos
  scanNeed = 0
  while (todo > 0) {
    if (p >= end) return -1
    const t = buf[p]!
    switch (t) {
      case 43: // + simple string
      case 45: // - error
      case 58: // : integer
      case 95: // _ null
      case 44: // , double
      case 35: // # boolean
      case 40: {
        // ( big number
        const cr = buf.indexOf(CR, p + 1)
        if (cr === -1 || cr + 1 >= end) return -1
        if (buf[cr + 1] !== LF) throw new ProtocolError('Protocol error: line not terminated by CRLF')
        p = cr + 2
        todo--
        break
      }
      case 36: // $ bulk
      case 33: // ! bulk error
      case 61: {
        // = verbatim
        const len = readLineInt(buf, p + 1, end, 'bulk', maxBulkBytes)
        if (len === -2) return -1
        p = lineEnd
        if (len >= 0) {
          if (p + len + 2 > end) {
            scanNeed = p + len + 2 - pos
            return -1
          }
          if (buf[p + len] !== CR || buf[p + len + 1] !== LF) throw new ProtocolError('Protocol error: bulk not terminated by CRLF')
          p += len + 2
        }
        todo--
        break
      }
      case 42: // * array
      case 126: // ~ set
      case 62: // > push
      case 37: // % map
      case 124: {
        // | attribute (precedes the value it annotates, so it does not count as one)
        const n = readLineInt(buf, p + 1, end, 'multibulk', 0x7fffffff)
        if (n === -2) return -1
        p = lineEnd
        if (t !== 124) todo--
        if (n > 0) todo += t === 37 || t === 124 ? 2 * n : n
        break
      }
      default:
        throw new ProtocolError(`Protocol error: unexpected reply type byte ${t}`)
    }
  }
  return p
}
/** After scanReply returned -1 inside a bulk: the bytes from `pos` the reply needs at least. */
export let scanNeed = 0

export class ReplyError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ReplyError'
  }
}

export type ReplyValue = null | string | number | bigint | boolean | Buffer | ReplyError | ReplyValue[] | Map<ReplyValue, ReplyValue>

/** Decodes one complete reply (already delimited by scanReply) into values. For the proxy's own use only. */
export function decodeReply(buf: Buffer, pos: number, depth = 0): { value: ReplyValue; end: number } {
  if (depth > 64) throw new ProtocolError('Protocol error: reply nested too deep')
  const t = buf[pos]!
  const cr = buf.indexOf(CR, pos + 1)
  const line = buf.toString('latin1', pos + 1, cr)
  let p = cr + 2
  switch (t) {
    case 43:
      return { value: line, end: p }
    case 45:
      return { value: new ReplyError(line), end: p }
    case 58:
      return { value: Number(line), end: p }
    case 95:
      return { value: null, end: p }
    case 44:
      return { value: Number(line), end: p }
    case 35:
      return { value: line === 't', end: p }
    case 40:
      return { value: BigInt(line), end: p }
    case 36:
    case 33:
    case 61: {
      const len = Number(line)
      if (len < 0) return { value: null, end: p }
      const data = Buffer.from(buf.subarray(p, p + len))
      return { value: t === 33 ? new ReplyError(data.toString()) : data, end: p + len + 2 }
    }
    case 42:
    case 126:
    case 62:
    case 37:
    case 124: {
      const n = Number(line)
      if (n < 0) return { value: null, end: p }
      if (t === 37 || t === 124) {
        const m = new Map<ReplyValue, ReplyValue>()
        for (let i = 0; i < n; i++) {
          const k = decodeReply(buf, p, depth + 1)
          const v = decodeReply(buf, k.end, depth + 1)
          m.set(Buffer.isBuffer(k.value) ? k.value.toString() : k.value, v.value)
          p = v.end
        }
        if (t === 124) return decodeReply(buf, p, depth + 1)
        return { value: m, end: p }
      }
      const arr: ReplyValue[] = []
      for (let i = 0; i < n; i++) {
        const r = decodeReply(buf, p, depth + 1)
        arr.push(r.value)
        p = r.end
      }
      return { value: arr, end: p }
    }
    default:
      throw new ProtocolError(`Protocol error: unexpected reply type byte ${t}`)
  }
}

/** Encodes a command as a RESP multibulk. */
export function encodeCommand(args: ReadonlyArray<string | Buffer | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), typeof a === 'string' ? 'latin1' : 'utf8')
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF)
  }
  return Buffer.concat(parts)
}
const CRLF = Buffer.from('\r\n')

export const reply = {
  ok: Buffer.from('+OK\r\n'),
  error: (message: string) => Buffer.from(`-${message.replace(/[\r\n]/g, ' ')}\r\n`),
  integer: (n: number) => Buffer.from(`:${n}\r\n`),
  bulk: (v: string | Buffer | null, proto: number) => {
    if (v === null) return Buffer.from(proto === 3 ? '_\r\n' : '$-1\r\n')
    const b = Buffer.isBuffer(v) ? v : Buffer.from(v, 'latin1')
    return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, CRLF])
  },
  /** A map in RESP3, a flat [k, v, k, v] array in RESP2. Values are integers, doubles or strings. */
  map: (pairs: Array<[string, number | string]>, proto: number) => {
    const parts: Buffer[] = [Buffer.from(proto === 3 ? `%${pairs.length}\r\n` : `*${pairs.length * 2}\r\n`)]
    for (const [k, v] of pairs) {
      parts.push(reply.bulk(k, proto))
      if (typeof v === 'number' && Number.isInteger(v)) parts.push(reply.integer(v))
      else parts.push(reply.bulk(String(v), proto))
    }
    return Buffer.concat(parts)
  },
  array: (items: Buffer[]) => Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items]),
}

/**
 * Received bytes not yet parsed. A chunk that leaves nothing behind is used as it is (no copy);
 * otherwise bytes go into a store that doubles when full, so a frame cut across many reads costs
 * linear time. Bytes already handed out (frames forwarded as views) are never overwritten: the
 * store only grows at its end, and a full store is replaced, not reused.
 */
export class InputBuffer {
  buf: Buffer = EMPTY
  pos = 0
  private store: Buffer | null = null
  private needed = 0

  /** Unparsed bytes held. */
  get size(): number {
    return this.buf.length - this.pos
  }

  /** Adds a received chunk; false while the frame waited for (see `wait`) is still incomplete. */
  push(chunk: Buffer): boolean {
    const live = this.buf.length - this.pos
    if (live === 0) {
      this.buf = chunk
      this.pos = 0
      this.store = null
    } else {
      const len = this.buf.length
      let store = this.store
      if (store === null || store.length - len < chunk.length || this.buf.buffer !== store.buffer || this.buf.byteOffset !== store.byteOffset) {
        store = Buffer.allocUnsafe(Math.max(2 * (live + chunk.length), 16 * 1024))
        this.buf.copy(store, 0, this.pos, len)
        chunk.copy(store, live)
        this.store = store
        this.buf = store.subarray(0, live + chunk.length)
        this.pos = 0
      } else {
        chunk.copy(store, len)
        this.buf = store.subarray(0, len + chunk.length)
      }
    }
    if (this.buf.length - this.pos < this.needed) return false
    this.needed = 0
    return true
  }

  /** The parser needs `need` bytes from `pos` on: push() says false until they are there (once). */
  wait(need: number): void {
    this.needed = need
  }

  /** Every unparsed byte, and the buffer emptied. */
  take(): Buffer {
    const rest = this.buf.subarray(this.pos)
    this.buf = EMPTY
    this.pos = 0
    this.store = null
    this.needed = 0
    return rest
  }
}
const EMPTY = Buffer.alloc(0)
