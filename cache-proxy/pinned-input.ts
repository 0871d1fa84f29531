// The commands of a client on its dedicated connection. They go to Redis as the client sent them
// (runs of them in one write), except what the policy refuses and the proxy's own commands, whose
// answers are put in place in the reply stream; writes still drop the cache entries they make
// stale, and RESET hands the client back to shared connections.
import { writtenKeys } from './client-state.js'
import { lookupCommand, unknownCommand, type CommandSpec } from './commands.js'
import type { Dedicated } from './pinned.js'
import type { ReadCache } from './read-cache.js'
import type { RequestParser } from './request.js'
import { encodeCommand, type InputBuffer } from './resp.js'

const RESET = encodeCommand(['RESET'])
/** Keys remembered between MULTI and EXEC; a larger transaction flushes the cache at EXEC. */
const MAX_TX_KEYS = 1024

export interface PinnedInputHost {
  readonly reads: ReadCache
  /** The policy's refusal of a command, as the reply to give, or undefined. */
  refusal(p: RequestParser, spec: CommandSpec): Buffer | undefined
  /** Runs a CACHE.* command and passes its answer on (later commands wait for an asynchronous one). */
  cacheCommand(name: string, args: Buffer[], answer: (reply: Buffer) => void): void
  /** True while the client's commands may go on (still pinned, not suspended, Redis keeps up). */
  canGo(): boolean
  /** Redis does not keep up with the client's writes: hold its input until the connection drains. */
  upstreamFull(): void
  /** RESET went to Redis: hold the client's input until its +RESET is out, then unpin it. */
  resetting(): void
}

export class PinnedInput {
  /** Keys written inside MULTI, dropped again at EXEC (null outside MULTI). */
  private txKeys: Set<string> | null = null
  private txOverflow = false

  constructor(
    private readonly link: Dedicated,
    private readonly host: PinnedInputHost,
  ) {}

  /** Parses and forwards what the input holds, until it is empty or the host says stop. */
  run(p: RequestParser, input: InputBuffer): void {
    const link = this.link
    const buf = input.buf
    let from = -1
    let to = -1
    const flush = () => {
      if (from < 0) return
      if (!link.send(buf.subarray(from, to))) this.host.upstreamFull()
      from = -1
    }
    try {
      while (this.host.canGo() && input.pos < buf.length) {
        const start = input.pos
        const next = p.parse(buf, start, buf.length)
        if (next < 0) {
          input.wait(p.need)
          break
        }
        input.pos = next
        const own = p.argc > 0 ? this.handle(p) : undefined
        if (own === undefined) {
          if (from < 0) from = start
          to = next
          continue
        }
        flush()
        own()
      }
    } finally {
      // Commands before a protocol error still go: Redis would have run them.
      flush()
    }
  }

  /** What the proxy does itself with a command, or undefined to forward it. */
  private handle(p: RequestParser): (() => void) | undefined {
    const link = this.link
    const spec = lookupCommand(p.arg(0)) ?? unknownCommand(p.arg(0))
    const refused = this.host.refusal(p, spec)
    if (refused !== undefined) return () => link.inject(refused)
    const reads = this.host.reads
    switch (spec.kind) {
      case 'write': {
        // Tracking covers these writes too; dropping the keys now closes the window until its message arrives.
        const keys = writtenKeys(p, spec)
        if (keys === undefined) break
        for (const k of typeof keys === 'string' ? [keys] : keys) {
          reads.invalidate(k)
          if (this.txKeys === null) continue
          if (this.txKeys.size < MAX_TX_KEYS) this.txKeys.add(k)
          else this.txOverflow = true
        }
        break
      }
      case 'flush':
        reads.flush()
        break
      case 'stateful':
        if (spec.name === 'MULTI') this.txKeys = new Set()
        break
      case 'nokey':
        if (spec.name === 'EXEC' && this.txKeys !== null) {
          if (this.txOverflow) reads.flush()
          else for (const k of this.txKeys) reads.invalidate(k)
        }
        if (spec.name === 'EXEC' || spec.name === 'DISCARD') {
          this.txKeys = null
          this.txOverflow = false
        }
        break
      case 'proxy':
        if (spec.name === 'RESET' && p.argc === 1) {
          return () => {
            link.send(RESET)
            this.host.resetting()
          }
        }
        if (spec.name.startsWith('CACHE.')) {
          const args = p.allArgs().map((a) => Buffer.from(a))
          return () => this.host.cacheCommand(spec.name, args, (answer) => link.inject(answer))
        }
        break
    }
    return undefined
  }
}
