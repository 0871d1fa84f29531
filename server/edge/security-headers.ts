// Helmet's security headers, computed once. @fastify/helmet rebuilds the helmet middleware (CSP
// directives parsed again) on every request in two extra hooks, which cost the gateway ~9% of its
// CPU per request in the benchmark; with the default configuration its output never changes, so
// the edge asks it once at start and sets the same headers itself.
import helmet from '@fastify/helmet'
import Fastify from 'fastify'

// Headers a plain Fastify reply has anyway; everything else on the probe's answer is helmet's.
const NOT_HELMET = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding'])

/** The headers helmet (default configuration) adds to a response. */
export async function helmetHeaders(): Promise<Readonly<Record<string, string>>> {
  const probe = Fastify({ logger: false })
  await probe.register(helmet, { global: true })
  probe.get('/', async () => ({}))
  const res = await probe.inject({ url: '/' })
  await probe.close()
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(res.headers)) {
    if (!NOT_HELMET.has(name) && typeof value === 'string') out[name] = value
  }
  return Object.freeze(out)
}
