#!/usr/bin/env node
// The `flowgate` CLI: one subcommand per process, `start` for all of them. The only module that
// touches `process` (arguments, signals, exit codes) besides lib/config.ts reading the environment.
import '../lib/v8-flags.js'
import type { BusRole } from '../lib/bus.js'
import { ConfigError, describeConfig, isDefaultSecret, loadConfig, type Config } from '../lib/config.js'
import { createLogger, type Logger } from '../lib/logger.js'
import type { Host } from '../lib/metrics.js'
import { NatsConnectError } from '../lib/nats.js'
import type { Running } from '../lib/shutdown.js'
import type { Tracing } from '../lib/telemetry.js'
import { busConfig, NatsMissingError, startLocalBus, type LocalBus } from './dev-nats.js'

type Starter = (config: Config, log: Logger, host: Host) => Promise<Running>
const say = (line: string) => console.log(line)

// Loaded on demand so that `flowgate flows` does not import the gateway, and so on.
// In start order for `flowgate start` (the proxy before the flows that use it, the gateway last so
// it finds the flows at once); stopped in reverse.
const processes: Record<string, () => Promise<Starter>> = {
  'cache-proxy': async () => (await import('../cache-proxy/main.js')).start,
  flows: async () => {
    const { start } = await import('../flows/main.js')
    return (config, log, host) => start(config, log, say, host)
  },
  subscriber: async () => (await import('../events/main.js')).start,
  gateway: async () => (await import('../server/main.js')).start,
}
/** The bus role each process connects as (the cache proxy does not use the bus). */
const ROLE: Record<string, BusRole | undefined> = { flows: 'flows', subscriber: 'subscriber', gateway: 'gateway' }

const HELP = `flowgate <command>

  start         everything for local use (with NATS_URL unset, runs its own locked-down nats-server)
  gateway       the HTTP gateway
  flows         a flow worker (run several to scale)
  subscriber    the JetStream consumer acting on gateway events (auto-block, alerts)
  cache-proxy   the RESP caching proxy in front of Redis
  events tail [--all] [kind]     print gateway events as they arrive
  blocks list | add <address> [ttlSec] | lift <address>
  nats setup <dir> | nsc         a locked-down nats-server config and role keys for a deployment
  upstream register <service> <url> [--weight n] [--ttl sec] | upstream list
  trace <traceId>                one request's steps as a waterfall (the x-trace-id of any answer)
  config        print every setting, its variable and default
  db migrate    apply pending database migrations
  db seed       create the root admin and the API client (idempotent)

Configuration comes from the environment; see README.md.`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(HELP)
    return command ? 0 : 2
  }
  if (command === 'config') {
    for (const c of describeConfig()) console.log(`${c.env.padEnd(28)} ${c.default.padEnd(24)} ${c.description}`)
    return 0
  }
  if (command === 'nats') {
    const { runNatsCommand } = await import('./nats.js')
    return runNatsCommand(rest, say)
  }
  const config = loadConfig()
  const log = createLogger(config, { pid: process.pid })
  if (isDefaultSecret(config) && config.nodeEnv !== 'test') log.warn('JWT_SECRET is the public development default; set it before exposing this gateway')

  if (command === 'db') {
    const { isDbCommand, runDbCommand, isDbUsageError } = await import('../db/commands.js')
    const [sub, ...extra] = rest
    if (!isDbCommand(sub) || extra.length > 0) throw new UsageError(`usage: flowgate db migrate|seed\n\n${HELP}`)
    const code = await runDbCommand(sub, config, log, (line) => console.log(line)).then(
      () => 0,
      (err: unknown) => {
        if (!isDbUsageError(err)) throw err
        console.error(err.message)
        return 1
      },
    )
    log.flush()
    return code
  }

  if (command === 'events' || command === 'blocks') {
    const { runEdgeCommand } = await import('./events.js')
    const stop = new AbortController()
    process.once('SIGINT', () => stop.abort())
    process.once('SIGTERM', () => stop.abort())
    const code = await runEdgeCommand(command, rest, busConfig(config, 'cli'), log, (line) => console.log(line), stop.signal)
    log.flush()
    return code
  }

  if (command === 'upstream') {
    const { runUpstreamCommand } = await import('./upstream.js')
    const stop = new AbortController()
    process.once('SIGINT', () => stop.abort())
    process.once('SIGTERM', () => stop.abort())
    const code = await runUpstreamCommand(rest, busConfig(config, 'registrar'), log, (line) => console.log(line), stop.signal)
    log.flush()
    return code
  }

  if (command === 'trace') {
    const { runTraceCommand } = await import('./trace.js')
    const code = await runTraceCommand(rest, busConfig(config, 'cli'), log, (line) => console.log(line))
    log.flush()
    return code
  }

  let bus: LocalBus | undefined
  const started: Running[] = []
  const names = command === 'start' ? Object.keys(processes) : [command]
  for (const name of names) if (!processes[name]) throw new UsageError(`unknown command "${name}"\n\n${HELP}`)
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`)

  let tracing: Tracing | undefined
  const stopAll = async (): Promise<boolean> => {
    let clean = true
    for (const r of started.reverse()) clean = (await r.close()) && clean
    // Last, so the spans of the shutdown itself go out too (bounded by the export timeout).
    await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'span export at shutdown failed'))
    bus?.stop()
    log.flush()
    return clean
  }
  const done = new Promise<number>((resolve) => {
    let stopping = false
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return
      stopping = true
      log.info({ signal }, 'stopping')
      // Exit here rather than only resolving: a signal may come while a part is still starting
      // (waiting for NATS, say), and main() would never get past that await.
      void stopAll().then((clean) => {
        resolve(clean ? 0 : 1)
        process.exit(clean ? 0 : 1)
      })
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  })

  // Try it at once: in development with no services file, two demo upstreams behind /api/products.
  let runConfig = config
  const demo = command === 'start' && config.nodeEnv === 'development' && config.servicesFile === undefined && config.demoUpstreams
  try {
    if (command === 'start') bus = await startLocalBus(config, say)
    if (demo) {
      const { startDemoUpstreams } = await import('./demo-upstreams.js')
      const upstreams = await startDemoUpstreams(config.dataDir)
      started.push(upstreams)
      runConfig = Object.freeze({ ...config, servicesFile: upstreams.servicesFile })
    }
    const host = await hostFor(command, config, log)
    tracing = host.tracing
    for (const name of names) {
      const starter = await processes[name]!()
      const role = ROLE[name]
      started.push(await starter(role === undefined ? runConfig : busConfig(runConfig, role, bus), log, host))
    }
  } catch (err) {
    await stopAll()
    throw err
  }
  for (const r of started) console.log(`✔ ${r.describe}`)
  if (command === 'start' || command === 'gateway') {
    const base = `http://localhost:${config.port}`
    const products = demo ? `\n  curl ${base}/api/products        (a proxy route to two demo upstreams; SERVICES_FILE to use your own)` : ''
    console.log(`\nFlowgate is up. Try:\n  curl ${base}/api/v1/healthcheck${products}\n  open ${base}/docs\n`)
  }
  return done
}

class UsageError extends Error {}

/**
 * What the parts share in this process: one tracer (its instrumentations registered before any part
 * is loaded, so pg and ioredis are patched when the parts import them) and, under `flowgate start`,
 * one metrics registry that the gateway serves at /metrics (one scrape target for everything).
 */
async function hostFor(command: string, config: Config, log: Logger): Promise<Host> {
  const { createTracing, registerTracingMetrics } = await import('../lib/telemetry.js')
  // Library spans are made inside flow steps: only a process that hosts flows registers the
  // instrumentations and pays for the context manager they need.
  const hostsFlows = command === 'start' || command === 'flows'
  let libraries = false
  if (config.otelEndpoint && hostsFlows) {
    const { instrumentLibraries, LIBRARIES } = await import('../lib/instrumentation.js')
    const { tooLate } = await instrumentLibraries(config.otelNodeDisabledInstrumentations)
    if (tooLate.length > 0) log.warn({ modules: tooLate }, 'loaded before tracing started: their calls are not traced')
    libraries = LIBRARIES.some((name) => !config.otelNodeDisabledInstrumentations.includes(name))
  }
  const tracing = await createTracing(config, command === 'start' ? '' : command, { activeContext: libraries })
  if (command !== 'start') return { tracing }
  const { Registry } = await import('prom-client')
  const registry = new Registry()
  registerTracingMetrics(registry, tracing)
  return { tracing, registry }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Everything was closed in order (or given up on at the deadline); timers a library left behind must not keep us up.
    process.exit(code)
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof NatsMissingError || err instanceof NatsConnectError || err instanceof UsageError) console.error(err.message)
    else console.error('flowgate failed to start:', err)
    process.exitCode = err instanceof UsageError ? 2 : 1
  },
)
