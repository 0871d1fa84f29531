// RESP framing for the proxy. Replies are only *scanned* for their end so that their raw bytes can
// be forwarded unchanged; a full decoder exists for the few replies the proxy reads itself
// (tracking messages, tag scripts). Requests are read by request.ts.

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
