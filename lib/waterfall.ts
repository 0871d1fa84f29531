// One trace's steps laid out as a waterfall: nested by parent span, ordered by start, each with its
// offset from the start of the trace. Shared by the trace page (server/trace-page.ts) and
// `flowgate trace` (cli/trace.ts), so a browser and a terminal show the same thing.
import type { StepEvent } from '../schemas/trace.js'

export interface WaterfallRow {
  /** A flow run (the worker's handling of the request) or one of its steps. */
  kind: 'run' | 'step'
  spanId: string
  /** 0 for a step the flow ran directly, 1 for a step inside it, ... */
  depth: number
  /** The step's own name (its path without its parent's). */
  name: string
  /** The step's full path, `parent/child`. */
  path: string
  flow: string
  offsetMs: number
  durationMs: number
  outcome: 'ok' | 'error'
  errorCode?: string
  worker?: string
}

export interface Waterfall {
  traceId: string
  /** Epoch ms of the earliest step (or of the request, when it is known). */
  startedAt: number
  /** From the start to the end of the latest step (or of the request). */
  totalMs: number
  flows: string[]
  workers: string[]
  rows: WaterfallRow[]
  /** Steps not laid out because of the row bound. */
  omitted: number
}

/** What the gateway knows of the request itself (its recent ring), when the trace passed through it. */
export interface RequestSpan {
  startedAt: number
  durationMs: number
  method: string
  route: string
  status: number
}

const MAX_DEPTH = 32

/** Lays out at most `maxRows` runs and steps, depth first in start order, steps under their run; the rest are counted, not shown. */
export function buildWaterfall(traceId: string, steps: readonly StepEvent[], maxRows: number, request?: RequestSpan, runs: readonly StepEvent[] = []): Waterfall {
  const byId = new Map(steps.map((s) => [s.spanId, s]))
  const runIds = new Set(runs.map((r) => r.spanId))
  const ids = new Set([...byId.keys(), ...runIds])
  const children = new Map<string, StepEvent[]>()
  const roots: StepEvent[] = [...runs]
  for (const step of steps) {
    // A step whose parent is no step is run by the flow directly (its parent is the flow's span).
    if (ids.has(step.parentSpanId) && step.parentSpanId !== step.spanId) {
      let list = children.get(step.parentSpanId)
      if (!list) children.set(step.parentSpanId, (list = []))
      list.push(step)
    } else {
      roots.push(step)
    }
  }
  const byStart = (a: StepEvent, b: StepEvent) => a.startedAt - b.startedAt || a.step.localeCompare(b.step)
  let start = Infinity
  let end = 0
  for (const s of [...steps, ...runs]) {
    start = Math.min(start, s.startedAt)
    end = Math.max(end, s.startedAt + s.durationMs)
  }
  if (request) {
    start = Math.min(start, request.startedAt)
    end = Math.max(end, request.startedAt + request.durationMs)
  }
  if (start === Infinity) start = 0

  const rows: WaterfallRow[] = []
  const visited = new Set<string>()
  // Iterative depth-first walk: a trace of 10,000 nested steps must not exhaust the stack.
  const stack: Array<{ step: StepEvent; depth: number }> = roots.sort(byStart).reverse().map((step) => ({ step, depth: 0 }))
  while (stack.length > 0 && rows.length < maxRows) {
    const { step, depth } = stack.pop()!
    if (visited.has(step.spanId)) continue // a span id reused by a rogue publisher: shown once
    visited.add(step.spanId)
    // A nested step's path is its parent's path, a slash, its name (which may itself hold a slash).
    const parentPath = byId.get(step.parentSpanId)?.step
    const name = parentPath !== undefined && step.step.startsWith(`${parentPath}/`) ? step.step.slice(parentPath.length + 1) : step.step
    rows.push({
      kind: step.kind === 'run' ? 'run' : 'step',
      spanId: step.spanId,
      depth: Math.min(depth, MAX_DEPTH),
      name,
      path: step.step,
      flow: step.flow,
      offsetMs: round(step.startedAt - start),
      durationMs: step.durationMs,
      outcome: step.outcome,
      errorCode: step.errorCode,
      worker: step.worker,
    })
    const kids = children.get(step.spanId)
    if (kids) for (const kid of [...kids].sort(byStart).reverse()) stack.push({ step: kid, depth: depth + 1 })
  }
  return {
    traceId,
    startedAt: start,
    totalMs: round(Math.max(0, end - start)),
    flows: [...new Set([...runs, ...steps].map((s) => s.flow))],
    workers: [...new Set([...runs, ...steps].flatMap((s) => (s.worker ? [s.worker] : [])))],
    rows,
    omitted: steps.length + runs.length - rows.length,
  }
}

const round = (ms: number) => Math.round(ms * 1000) / 1000

/** A duration for people: `0.42 ms`, `12.3 ms`, `1.25 s`. */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`
  if (ms >= 10) return `${ms.toFixed(1)} ms`
  return `${ms.toFixed(2)} ms`
}
