// The flow worker process: connect, host every flow, stop in reverse order.
import { DatabaseLockedError, openDatabase } from '../db/client.js'
import { checkAdminPassword, seedDatabase } from '../db/seed.js'
import { createTokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { createPasswordHasher } from '../lib/passwords.js'
import { closeAll, type Closer, type Running } from '../lib/shutdown.js'
import { Registry } from 'prom-client'
import { collectProcessMetrics, serveMetrics, type Host } from '../lib/metrics.js'
import { createTracing, registerTracingMetrics } from '../lib/telemetry.js'
import { closeCacheClient, createCacheClient, probeCache } from './cache.js'
import type { FlowDeps } from './context.js'
import { databaseFreeFlows, flows } from './registry.js'
import { createFlowWorker } from './worker.js'

/**
 * Starts a flow worker; run as many as you like, they share one queue group. `say` shows a person
 * at the terminal what they must see once (the seeded passwords), apart from the log.
 */
export async function start(config: Config, log: Logger, say: (line: string) => void, host: Host = {}): Promise<Running> {
  const closers: Closer[] = []
  const stopEarly = async (err: unknown) => {
    await closeAll(closers, config.shutdownTimeoutMs, log)
    throw err
  }
  let tracing = host.tracing
  if (!tracing) {
    const own = await createTracing(config, 'flows')
    closers.push({ name: 'telemetry', close: () => own.shutdown() })
    tracing = own
  }
  // Run on its own, the worker has its own registry (and its /metrics port); under `flowgate start`, the host's.
  let registry = host.registry
  if (!registry) {
    registry = new Registry()
    collectProcessMetrics(registry, 'flowgate_flows_')
    registerTracingMetrics(registry, tracing)
  }
  const nc = await connectNats(config, log, 'flows')
  closers.push({ name: 'nats', close: () => nc.drain() })
  const tokens = createTokenService(config)
  const cache = createCacheClient(config, log)
  closers.push({ name: 'cache', close: () => closeCacheClient(cache) })
  const flowDeps: FlowDeps = { nats: nc, probes: { redis: () => probeCache(cache) }, cache, tokens }
  let hosted = flows
  let databaseKind = 'none'
  const database = await openDatabase(config, log).catch((err: unknown) => {
    // PGlite serves one process. A second worker on the same data dir still helps: it hosts the
    // flows that need no database, and the first worker keeps serving the rest.
    if (err instanceof DatabaseLockedError) return undefined
    return stopEarly(err)
  })
  if (database) {
    closers.push({ name: 'database', close: () => database.close() })
    const passwords = createPasswordHasher()
    // Makes the dummy hash now, so that even the first login for an unknown email costs one hash, not two.
    // In the background: two scrypt runs would hold the start up (about 0.2 s idle, a second on a busy machine).
    passwords.verifyDummy('').catch((err: unknown) => log.warn({ err }, 'dummy password hash not made at start'))
    await database.migrate().catch(stopEarly)
    // In development the seed runs at start (idempotent), so a newcomer gets a root admin at once;
    // elsewhere only its check that ADMIN_PASSWORD is the stored one runs.
    if (config.nodeEnv === 'development') await seedDatabase(database.db, config, passwords, say).catch(stopEarly)
    else {
      const notice = await checkAdminPassword(database.db, config, passwords).catch(stopEarly)
      if (notice !== undefined) log.warn(notice)
    }
    Object.assign(flowDeps, { db: database.db, passwords })
    flowDeps.probes.database = () => database.probe()
    databaseKind = database.kind
  } else {
    hosted = databaseFreeFlows
    log.warn(
      { hosted: hosted.map((f) => f.name) },
      'the embedded database is held by another process: this worker hosts only the flows that need no database (set DATABASE_URL to run several full workers)',
    )
  }
  const worker = await createFlowWorker(config, { nats: nc, log, tokens, tracing, registry, flowDeps }, hosted).catch(stopEarly)
  closers.push({ name: 'worker', close: () => worker.stop(config.shutdownTimeoutMs / 2) })
  let metricsAt = ''
  if (!host.registry && config.flowMetricsPort > 0) {
    // Closed last: a scrape during shutdown still gets an answer.
    const metrics = await serveMetrics(registry, config.metricsHost, config.flowMetricsPort, log).catch(stopEarly)
    closers.unshift({ name: 'metrics', close: () => metrics.close() })
    metricsAt = `, metrics on http://${config.metricsHost}:${metrics.port}/metrics`
  }
  return {
    instances: [worker.instance],
    describe: `flow worker: ${hosted.length} flows on api.v1.* (queue group ${worker.instance.service}, concurrency ${config.flowConcurrency}, database ${databaseKind}${metricsAt})`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}
