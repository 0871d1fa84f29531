import { Type } from '@sinclair/typebox'
import { defineFlow } from '../define.js'

const PROBE_TIMEOUT_MS = 1000

const Check = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  latencyMs: Type.Number(),
  error: Type.Optional(Type.String()),
})

/** Reports each dependency; a dependency that is down degrades the answer, it does not fail it. */
export const healthcheck = defineFlow({
  name: 'healthcheck',
  summary: 'Status of NATS and of every dependency the worker has (database, Redis)',
  input: Type.Object({}),
  output: Type.Object({
    status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
    checks: Type.Record(Type.String(), Check),
  }),
  http: { method: 'GET', path: '/healthcheck' },
  auth: 'public',
  async run(_input, ctx) {
    const probes: Record<string, () => Promise<unknown>> = { nats: () => ctx.deps.nats.flush(), ...ctx.deps.probes }
    const entries = await ctx.step('probeDependencies', () =>
      Promise.all(Object.entries(probes).map(async ([name, probe]) => [name, await timedProbe(probe)] as const)),
    )
    const checks = Object.fromEntries(entries)
    const status = entries.every(([, c]) => c.status === 'up') ? ('ok' as const) : ('degraded' as const)
    return { status, checks }
  },
})

async function timedProbe(probe: () => Promise<unknown>) {
  const t0 = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS))),
    ])
    return { status: 'up' as const, latencyMs: Math.round(performance.now() - t0) }
  } catch (err) {
    // The probe's own message is kept short and says what failed; connection strings are never in it.
    const error = err instanceof Error ? err.message.slice(0, 200) : 'failed'
    return { status: 'down' as const, latencyMs: Math.round(performance.now() - t0), error }
  } finally {
    clearTimeout(timer)
  }
}
