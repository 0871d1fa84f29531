// One attempt of a proxied request on one target: an undici dispatch handler (the documented
// handler interface: onRequestStart, onResponseStart, onResponseData, onResponseEnd,
// onResponseError) whose promise is the call the target's breaker counts. It passes what arrives
// to its ProxyCall, which owns the decisions; it keeps the target's in-flight count and its span.
import type { Dispatcher } from 'undici'
import { FlowgateError } from '../../lib/errors.js'
import type { SpanHandle } from '../../lib/telemetry.js'
import { NotTheTargetsFault } from './breaker.js'
import type { ProxyCall } from './proxy.js'
import type { Failure } from './retry.js'
import type { UpstreamTarget } from './target.js'

/** One attempt on one target: an undici dispatch handler whose outcome the target's breaker counts. */
export class Exchange implements Dispatcher.DispatchHandler {
  readonly span: SpanHandle
  started = false
  superseded = false
  status = 0
  sentAt = 0
  private controller: Dispatcher.DispatchController | undefined
  private pendingAbort: Error | undefined
  private resolveEnd!: () => void
  private rejectEnd!: (err: Error) => void
  private settled = false
  private drainWait: (() => void) | undefined

  constructor(
    private readonly call: ProxyCall,
    readonly t: UpstreamTarget,
    readonly tryMs: number,
  ) {
    const r = call.request
    this.span = call.deps.tracing.startSpan(`${r.method} upstream ${t.upstream}`, r.traceId, r.span?.spanId, {
      'flowgate.upstream': t.upstream,
      'server.address': t.origin,
    })
  }

  /** The breaker's call: resolves or rejects when the exchange is over. */
  readonly start = (): Promise<void> => {
    this.started = true
    this.t.active++
    this.sentAt = Date.now()
    return new Promise<void>((resolve, reject) => {
      this.resolveEnd = resolve
      this.rejectEnd = reject
      try {
        this.t.pool.dispatch(this.call.dispatchOptions(this), this)
      } catch (err) {
        this.onResponseError(undefined, err as Error)
      }
    })
  }

  abort(reason: Error): void {
    if (this.controller !== undefined) this.controller.abort(reason)
    else this.pendingAbort = reason
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.pendingAbort !== undefined) controller.abort(this.pendingAbort)
    else if (this.call.gone) controller.abort(new NotTheTargetsFault('client went away'))
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.controller = controller
    // 1xx are informational: the gateway does not pass them on (a 101 it did not ask for fails the exchange).
    if (statusCode < 200) return
    this.status = statusCode
    this.call.onResponse(this, statusCode, headers)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.call.onData(this, chunk)) {
      controller.pause()
      this.drainWait ??= () => controller.resume()
      this.call.reply.raw.once('drain', this.drainWait)
    }
  }

  onResponseEnd(): void {
    this.call.onEnd(this)
    this.done(this.status >= 500 ? new UpstreamStatus(this.status) : undefined)
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    const blame = this.call.gone || err instanceof FlowgateError ? new NotTheTargetsFault(err.message) : err
    this.call.onError(this, err instanceof FlowgateError ? err : blame)
    this.done(blame)
  }

  private done(err: Error | undefined): void {
    if (this.settled) return
    this.settled = true
    const neutral = err instanceof NotTheTargetsFault
    if (!neutral) this.call.settle(this, err !== undefined)
    else {
      this.t.active--
    }
    this.span.end(err === undefined ? undefined : { code: err instanceof UpstreamStatus ? String(err.status) : failureOf(err), message: err.message })
    if (err === undefined) this.resolveEnd()
    else this.rejectEnd(err)
  }
}

/** A 5xx answer, as the breaker and the span see it. */
export class UpstreamStatus extends Error {
  constructor(readonly status: number) {
    super(`upstream answered ${status}`)
    this.name = 'UpstreamStatus'
  }
}

/** What kind of failure an undici error is: a timeout (504), a refused or reset connection, or a broken answer (502). */
export function failureOf(err: Error): Failure {
  const code = (err as { code?: string }).code ?? ''
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'timeout'
  if (err.name === 'HTTPParserError' || code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') return 'broken'
  if (err instanceof UpstreamStatus) return 'status'
  return 'connect'
}

