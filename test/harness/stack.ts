// A gateway and flow workers in this test process, against a real nats-server: what most gateway
// tests need. Logs are captured as parsed JSON lines so tests can assert on them.
import { Writable } from 'node:stream'
import { connect, type NatsConnection } from 'nats'
import { Registry } from 'prom-client'
import { createTokenService } from '../../lib/auth.js'
import { parseConfig, type Config } from '../../lib/config.js'
import { createLogger, type Logger } from '../../lib/logger.js'
import { disabledTracing } from '../../lib/telemetry.js'
import type { Flow } from '../../flows/define.js'
import { createFlowWorker, type FlowWorker } from '../../flows/worker.js'
import { buildGateway, type Gateway } from '../../server/gateway.js'

export interface LogSink {
  lines: Array<Record<string, unknown>>
  log: Logger
}

export function captureLogs(level: Config['logLevel'] = 'info'): LogSink {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  return { lines, log: createLogger({ logLevel: level }, {}, stream) }
}

export function testConfig(natsUrl: string, overrides: Record<string, unknown> = {}): Config {
  return parseConfig({ nodeEnv: 'test', natsUrl, logLevel: 'info', discoveryIntervalMs: 200, discoveryWaitMs: 100, ...overrides })
}

export interface TestWorker {
  worker: FlowWorker
  nc: NatsConnection
  stop(): Promise<void>
}

export async function startWorker(config: Config, flows: readonly Flow[], log: Logger): Promise<TestWorker> {
  const nc = await connect({ servers: config.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  const worker = await createFlowWorker(
    config,
    { nats: nc, log, tokens: createTokenService(config), tracing: disabledTracing, flowDeps: { nats: nc, probes: {} } },
    flows,
  )
  return {
    worker,
    nc,
    async stop() {
      await worker.stop(1000)
      await nc.close()
    },
  }
}

export interface TestGateway {
  gateway: Gateway
  nc: NatsConnection
  registry: Registry
  stop(): Promise<void>
}

export async function startGateway(config: Config, log: Logger): Promise<TestGateway> {
  const nc = await connect({ servers: config.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  const registry = new Registry()
  const gateway = await buildGateway(config, { nats: nc, log, tokens: createTokenService(config), tracing: disabledTracing, registry })
  await gateway.app.ready()
  return {
    gateway,
    nc,
    registry,
    async stop() {
      await gateway.close()
      await nc.close()
    },
  }
}

/** Waits until the gateway's route table has `path` (discovery runs every 200 ms in tests). */
export async function waitForRoute(gw: Gateway, method: string, path: string, present = true, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (Boolean(gw.discovery.table().find(method, path)) === present) return
    if (Date.now() > end) throw new Error(`route ${method} ${path} ${present ? 'never appeared' : 'never went away'}`)
    await gw.discovery.refresh()
    await new Promise((r) => setTimeout(r, 20))
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
