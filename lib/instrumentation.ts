// The OpenTelemetry instrumentations for pg, ioredis and undici, so that database queries, Redis
// commands and outgoing HTTP made inside a flow step are spans under that step.
//
// pg and ioredis are CommonJS, patched by a hook on `require`. An ES module `import` of them does not
// pass that hook (Node's ESM loader reads the CommonJS module itself), so after registering the hooks
// both are required once here: the module is then cached with its prototypes patched, and every
// later `import` of it, static or dynamic, gets that same patched module. This must run before any
// module that imports them is loaded: the CLI calls it first when tracing is on, and loads the
// process modules afterwards (dynamic imports), so tracing off costs not even the import.
// undici reports through diagnostics_channel, which works whenever it is subscribed.
// The instrumentation packages are imported statically: this module is itself loaded only when
// tracing is on, and in the linked build (scripts/bundle.mjs) a dynamic import() of a CommonJS
// package yields only its default export.
import { createRequire } from 'node:module'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'

export interface InstrumentedLibraries {
  /** Library modules that were already loaded before the hooks (their calls are not traced). */
  tooLate: string[]
}

export type InstrumentedLibrary = 'pg' | 'ioredis' | 'undici'
export const LIBRARIES: readonly InstrumentedLibrary[] = ['pg', 'ioredis', 'undici']

/** Registers the instrumentations not `disabled` (spans only under a traced operation: a flow step). */
export async function instrumentLibraries(disabled: readonly InstrumentedLibrary[] = []): Promise<InstrumentedLibraries> {
  const wanted = LIBRARIES.filter((name) => !disabled.includes(name))
  const patched = wanted.filter((name) => name !== 'undici')
  if (wanted.length === 0) return { tooLate: [] }
  const require = createRequire(import.meta.url)
  const tooLate = patched.filter((name) => {
    try {
      return require.cache[require.resolve(name)] !== undefined
    } catch {
      return false // not installed: nothing to patch
    }
  })
  const make = {
    // No parameter values: they hold what callers sent (emails, hashes).
    pg: () => new PgInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
    // The command name only: keys and values may hold what callers sent.
    ioredis: () => new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: (command) => command }),
    undici: () => new UndiciInstrumentation({ requireParentforSpans: true }),
  }
  registerInstrumentations({ instrumentations: wanted.map((name) => make[name]()) })
  for (const name of patched) require(name)
  return { tooLate }
}
