// The flow worker process: connect, host every flow, stop in reverse order.
import { createTokenService } from '../lib/auth.js'
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { closeAll, type Closer, type Running } from '../lib/shutdown.js'
import { createTracing } from '../lib/telemetry.js'
import type { FlowDeps } from './context.js'
import { flows } from './registry.js'
import { createFlowWorker } from './worker.js'

/** Starts a flow worker; run as many as you like, they share one queue group. */
export async function start(config: Config, log: Logger): Promise<Running> {
  const closers: Closer[] = []
  const tracing = createTracing(config, 'flows')
  closers.push({ name: 'telemetry', close: () => tracing.shutdown() })
  const nc = await connectNats(config, log, 'flowgate-flows')
  closers.push({ name: 'nats', close: () => nc.drain() })
  const flowDeps: FlowDeps = { nats: nc, probes: {} }
  const worker = await createFlowWorker(config, { nats: nc, log, tokens: createTokenService(config), tracing, flowDeps }, flows)
  closers.push({ name: 'worker', close: () => worker.stop(config.shutdownTimeoutMs / 2) })
  return {
    describe: `flow worker: ${flows.length} flows on api.v1.* (queue group ${worker.service.info().name}, concurrency ${config.flowConcurrency})`,
    close: () => closeAll(closers, config.shutdownTimeoutMs, log),
  }
}
