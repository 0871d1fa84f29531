// Step events are published on traces.<traceId>; this short-lived stream keeps them so one
// request's steps can be read back (GET /traces/:traceId, `nats stream view FLOWGATE_TRACES`).
import { DiscardPolicy, nanos, type MsgRequest, RetentionPolicy, StorageType, type NatsConnection, type StreamConfig } from 'nats'
import { StepEventCheck, type StepEvent } from '../schemas/trace.js'
import type { Logger } from './logger.js'
import { isNotFound } from './streams.js'
import { streams, subjects } from './subjects.js'

const TRACE_STREAM: Partial<StreamConfig> = {
  name: streams.traces,
  subjects: [subjects.traceAll],
  retention: RetentionPolicy.Limits,
  storage: StorageType.File,
  discard: DiscardPolicy.Old,
  max_age: nanos(15 * 60 * 1000),
  max_bytes: 256 * 1024 * 1024,
  max_msg_size: 64 * 1024,
  num_replicas: 1,
}

/** Creates the trace stream when it is missing; a server without JetStream only loses read-back. */
export async function ensureTraceStream(nc: NatsConnection, log: Logger): Promise<void> {
  try {
    const jsm = await nc.jetstreamManager({ timeout: 2000 })
    try {
      await jsm.streams.info(streams.traces)
    } catch (err) {
      if (!isNotFound(err)) throw err
      await jsm.streams.add(TRACE_STREAM)
    }
  } catch (err) {
    log.warn({ err }, 'trace stream unavailable: step events are published but not kept')
  }
}

/** Step messages read back for one trace at most: a page or a terminal shows fewer still. */
export const MAX_TRACE_STEPS = 1000

export interface TraceRead {
  /** The first steps recorded, oldest first (at most MAX_TRACE_STEPS). */
  steps: StepEvent[]
  /** The flow runs of the trace (their own events, `kind: 'run'`). */
  runs: StepEvent[]
  /** Messages the stream holds for the trace (steps beyond the bound included). */
  recorded: number
}

/** The recorded steps of one trace, oldest first (bounded); a message that is not a step event is skipped. */
export async function readTrace(nc: NatsConnection, traceId: string, timeoutMs = 2000): Promise<TraceRead> {
  const subject = subjects.trace(traceId)
  // Ask the stream how many messages the subject holds first: a fetch for a trace with none would wait out its expiry.
  const jsm = await nc.jetstreamManager({ timeout: timeoutMs })
  const info = await jsm.streams.info(streams.traces, { subjects_filter: subject })
  const recorded = info.state.subjects?.[subject] ?? 0
  const count = Math.min(recorded, MAX_TRACE_STEPS)
  if (count === 0) return { steps: [], runs: [], recorded }
  // Read by subject, one message after another: a trace is a few dozen steps, and this needs no consumer.
  const steps: StepEvent[] = []
  const runs: StepEvent[] = []
  let seq = 0
  for (let read = 0; read < count; read++) {
    // STREAM.MSG.GET takes next_by_subj since nats-server 2.9; nats.js types list it only for the direct API.
    const query = { next_by_subj: subject, seq: seq + 1 } as unknown as MsgRequest
    const m = await jsm.streams.getMessage(streams.traces, query)
    seq = m.seq
    let value: unknown
    try {
      value = m.json()
    } catch {
      continue // anyone may publish on traces.>: not JSON, not a step
    }
    if (StepEventCheck.Check(value)) (value.kind === 'run' ? runs : steps).push(value)
  }
  return { steps, runs, recorded: recorded - runs.length }
}
