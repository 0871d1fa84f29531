// Requests as Redis reads them (networking.c: processMultibulkBuffer, processInlineBuffer): the
// bytes the proxy accepts are exactly the bytes Redis accepts, so a forwarded frame never
// desynchronises a shared connection, and the errors are Redis's own.
import { latin1, ProtocolError } from './resp.js'

const CR = 13
const LF = 10

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

