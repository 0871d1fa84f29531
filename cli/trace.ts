// `flowgate trace <traceId>`: one request's steps as a waterfall in the terminal, read from the trace
// stream like the trace page, for people on a server without a browser.
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { readTrace } from '../lib/trace-stream.js'
import { buildWaterfall, formatMs, type Waterfall } from '../lib/waterfall.js'

const TRACE_ID = /^[0-9a-f]{32}$/
/** Rows printed at most: a terminal is smaller than a page. */
const MAX_ROWS = 200
const BAR_WIDTH = 40
const NAME_WIDTH = 36

/** Prints the waterfall; resolves with the exit code (2 bad id, 1 no steps or stream unavailable). */
export async function runTraceCommand(args: string[], config: Config, log: Logger, print: (line: string) => void): Promise<number> {
  const [traceId, ...extra] = args
  if (!traceId || extra.length > 0 || !TRACE_ID.test(traceId)) {
    print('usage: flowgate trace <traceId>   (32 lowercase hex digits: the x-trace-id of any answer)')
    return 2
  }
  const nc = await connectNats({ ...config, natsConnectTimeoutMs: Math.min(config.natsConnectTimeoutMs, 5000) }, log, 'cli')
  try {
    const read = await readTrace(nc, traceId).catch((err: unknown) => {
      log.debug({ err }, 'trace read failed')
      return undefined
    })
    if (read === undefined) {
      print(`Trace stream unavailable: the steps of ${traceId} cannot be read now.`)
      return 1
    }
    if (read.steps.length === 0 && read.runs.length === 0) {
      print(`No steps recorded for trace ${traceId} (steps are kept for 15 minutes).`)
      return 1
    }
    for (const line of renderWaterfall(buildWaterfall(traceId, read.steps, MAX_ROWS, undefined, read.runs), read.recorded)) print(line)
    return 0
  } finally {
    await nc.close()
  }
}

/** The waterfall as plain lines (no colour codes, so it pipes and greps). */
export function renderWaterfall(w: Waterfall, recorded: number): string[] {
  const lines = [
    `trace ${w.traceId}`,
    `flow ${w.flows.join(', ')}   ${recorded} steps   ${formatMs(w.totalMs)}   worker ${w.workers.join(', ') || 'unknown'}`,
    '',
    `${'step'.padEnd(NAME_WIDTH)} ${'start'.padStart(10)} ${'duration'.padStart(10)}  outcome`,
  ]
  const scale = w.totalMs > 0 ? BAR_WIDTH / w.totalMs : 0
  for (const r of w.rows) {
    // Control characters in a step name (any flow may name its steps) would move the terminal's cursor.
    const name = `${'  '.repeat(Math.min(r.depth, 8))}${r.kind === 'run' ? 'flow ' : ''}${printable(r.name)}`
    const clipped = name.length > NAME_WIDTH ? `${name.slice(0, NAME_WIDTH - 1)}…` : name.padEnd(NAME_WIDTH)
    const left = Math.min(BAR_WIDTH - 1, Math.floor(r.offsetMs * scale))
    const width = Math.max(1, Math.min(BAR_WIDTH - left, Math.round(r.durationMs * scale)))
    const bar = `${' '.repeat(left)}${(r.outcome === 'ok' ? '█' : '▒').repeat(width)}`.padEnd(BAR_WIDTH)
    const outcome = r.outcome === 'ok' ? 'ok     ' : `error ${r.errorCode ?? ''}`.padEnd(7)
    lines.push(`${clipped} ${formatMs(r.offsetMs).padStart(10)} ${formatMs(r.durationMs).padStart(10)}  ${outcome} |${bar}|`)
  }
  const shown = w.rows.filter((r) => r.kind === 'step').length
  if (recorded > shown) lines.push('', `showing ${shown} of ${recorded} recorded steps`)
  return lines
}

/** Control characters (C0, DEL, C1) become `?`. */
function printable(text: string): string {
  let out = ''
  for (const ch of text) {
    const c = ch.codePointAt(0)!
    out += c < 0x20 || (c >= 0x7f && c <= 0x9f) ? '?' : ch
  }
  return out
}
