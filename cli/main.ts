#!/usr/bin/env node
// The `flowgate` CLI: one subcommand per process, `start` for all of them. The only module that
// touches `process` (arguments, signals, exit codes) besides lib/config.ts reading the environment.
import '../lib/v8-flags.js'
import type { BusRole } from '../lib/bus.js'
import { ConfigError, effectiveSettings, isDefaultSecret, loadConfig, type Config } from '../lib/config.js'
import { createLogger, logDestination, type Logger } from '../lib/logger.js'
import type { Host } from '../lib/metrics.js'
import { NatsConnectError } from '../lib/nats.js'
import type { Running } from '../lib/shutdown.js'
import type { Tracing } from '../lib/telemetry.js'
import { cancelEarlyOpens, openEmbeddedDatabase } from '../db/pglite-client.js'
import { busConfig, NatsMissingError, startLocalBus, type LocalBus } from './dev-nats.js'

type Starter = (config: Config, log: Logger, host: Host) => Promise<Running>
// Two streams, never mixed: a server's stdout is its JSON log lines (pipe it to pino-pretty or a log
// shipper), and what a person must read (the banner, generated passwords, warnings) goes to stderr.
// A tool command's stdout is its output; its log lines go to stderr.
const say = (line: string) => console.error(line)
const out = (line: string) => console.log(line)

// Loaded on demand so that `flowgate flows` does not import the gateway, and so on.
// In start order for `flowgate start` (the proxy before the flows that use it, the gateway last so
// its first discovery round waits for the flows); stopped in reverse.
// A Map: the command name is what the user typed (`flowgate constructor` must be an unknown command).
const processes = new Map<string, () => Promise<Starter>>([
  ['cache-proxy', async () => (await import('../cache-proxy/main.js')).start],
  [
    'flows',
    async () => {
      const { start } = await import('../flows/main.js')
      return (config, log, host) => start(config, log, say, host)
    },
  ],
  ['subscriber', async () => (await import('../events/main.js')).start],
  ['gateway', async () => (await import('../server/main.js')).start],
])
/** The bus role each process connects as (the cache proxy does not use the bus). */
const ROLE = new Map<string, BusRole>([
  ['flows', 'flows'],
  ['subscriber', 'subscriber'],
  ['gateway', 'gateway'],
])

const HELP = `flowgate <command>

  start         everything for local use (with NATS_URL unset, runs its own locked-down nats-server)
  gateway       the HTTP gateway
  flows         a flow worker (run several to scale)
  subscriber    the JetStream consumer acting on gateway events (auto-block, alerts)
  cache-proxy   the RESP caching proxy in front of Redis
  events tail [--all] [kind]     print gateway events as they arrive
  blocks list | add <address> [ttlSec] | lift <address>
  trace <traceId>                one request's steps as a waterfall (the x-trace-id of any answer)
  upstream register <service> <url> [--weight n] [--ttl sec] | upstream list
  nats setup <dir> | nsc         a locked-down nats-server config and role keys for a deployment
  config        print every setting: the value in effect (secrets masked), where it came from
  db migrate    apply pending database migrations
  db seed       create the root admin and the API client (idempotent)
  admin reset-password <email>   a new password for an admin (ADMIN_PASSWORD, or a random one printed once)

Configuration comes from the environment; see README.md.`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    out(HELP)
    return command ? 0 : 2
  }
  if (command === 'nats') {
    const { runNatsCommand } = await import('./nats.js')
    return runNatsCommand(rest, out)
  }
  const serving = command === 'start' || processes.has(command)
  // Only a command that serves makes the development secret; the others read it if it is there.
  const config = loadConfig(undefined, { keepSecret: serving })
  const log = createLogger(config, { pid: process.pid }, serving ? undefined : logDestination(2))

  if (command === 'config') {
    if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`)
    for (const s of effectiveSettings(config)) out(`${s.env.padEnd(28)} ${s.value.padEnd(40)} ${s.origin.padEnd(11)} ${s.description}`)
    return 0
  }

  if (command === 'db' || command === 'admin') {
    const { isDbCommand, runDbCommand, runResetPassword, isDbUsageError } = await import('../db/commands.js')
    const [sub, ...extra] = rest
    let run: () => Promise<number>
    if (command === 'admin') {
      if (sub !== 'reset-password' || extra.length !== 1) throw new UsageError(`usage: flowgate admin reset-password <email>\n\n${HELP}`)
      run = () => runResetPassword(extra[0]!, config, log, out)
    } else {
      if (!isDbCommand(sub) || extra.length > 0) throw new UsageError(`usage: flowgate db migrate|seed\n\n${HELP}`)
      run = () => runDbCommand(sub, config, log, out).then(() => 0)
    }
    const code = await run().catch((err: unknown) => {
      if (!isDbUsageError(err)) throw err
      say(err.message)
      return 1
    })
    log.flush()
    return code
  }

  if (command === 'events' || command === 'blocks' || command === 'upstream') {
    const stop = new AbortController()
    process.once('SIGINT', () => stop.abort())
    process.once('SIGTERM', () => stop.abort())
    let code: number
    if (command === 'upstream') {
      const { runUpstreamCommand } = await import('./upstream.js')
      code = await runUpstreamCommand(rest, busConfig(config, 'registrar'), log, out, stop.signal)
    } else {
      const { runEdgeCommand } = await import('./events.js')
      code = await runEdgeCommand(command, rest, busConfig(config, 'cli'), log, out, stop.signal)
    }
    log.flush()
    return code
  }

  if (command === 'trace') {
    const { runTraceCommand } = await import('./trace.js')
    const code = await runTraceCommand(rest, busConfig(config, 'cli'), log, out)
    log.flush()
    return code
  }

  let bus: LocalBus | undefined
  let tracing: Tracing | undefined
  const started: Running[] = []
  const names = command === 'start' ? [...processes.keys()] : [command]
  for (const name of names) if (!processes.has(name)) throw new UsageError(`unknown command "${name}"\n\n${HELP}`)
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`)
  warnAboutSecret(config, names)

  const stopAll = async (): Promise<boolean> => {
    let clean = true
    for (const r of started.reverse()) clean = (await r.close()) && clean
    await cancelEarlyOpens()
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

  // The embedded database opens on its own thread while the parts load (db/pglite-client.ts).
  if (names.includes('flows') && config.databaseUrl === undefined) void openEmbeddedDatabase(config.dataDir, { early: true })

  // Try it at once: in development with no services file, two demo upstreams behind /api/products.
  let runConfig = config
  const demo = command === 'start' && config.nodeEnv === 'development' && config.servicesFile === undefined && config.demoUpstreams
  try {
    // Tracing first: its library instrumentations must be in place before any part loads pg or ioredis.
    const host = await hostFor(command, config, log)
    tracing = host.tracing
    // Every part's code loads while a local nats-server comes up (the start waits on it, idle).
    const loading = names.map((name) => processes.get(name)!())
    for (const l of loading) l.catch(() => undefined) // a failure is thrown where it is awaited, below
    if (command === 'start') bus = await startLocalBus(config, say)
    if (demo) {
      const { startDemoUpstreams } = await import('./demo-upstreams.js')
      const upstreams = await startDemoUpstreams(config.dataDir)
      started.push(upstreams)
      runConfig = Object.freeze({ ...config, servicesFile: upstreams.servicesFile })
    }
    // The parts start side by side (the flows wait for their database on its own thread while the
    // gateway builds), except the cache proxy, which the flows use, first; each is told when the
    // ones before it are up. Stopped in reverse order.
    const starting: Promise<Running>[] = []
    for (const [i, load] of loading.entries()) {
      const role = ROLE.get(names[i]!)
      const partsStarted = Promise.all(starting).then(
        (parts) => parts.flatMap((p) => p.instances ?? []),
        () => [], // the start fails as a whole, below
      )
      const run = load.then((start) => start(role === undefined ? runConfig : busConfig(runConfig, role, bus), log, { ...host, partsStarted }))
      starting.push(run)
      if (names[i] === 'cache-proxy') await run
    }
    const results = await Promise.allSettled(starting)
    for (const r of results) if (r.status === 'fulfilled') started.push(r.value)
    const failed = results.find((r) => r.status === 'rejected')
    if (failed) throw failed.reason
  } catch (err) {
    await stopAll()
    throw err
  }
  for (const r of started) say(`✔ ${r.describe}`)
  if (command === 'start' || command === 'gateway') {
    const base = started.find((r) => r.url !== undefined)!.url!
    const products = demo ? `\n  curl ${base}/api/products        (a proxy route to two demo upstreams; SERVICES_FILE to use your own)` : ''
    say(`\nFlowgate is up. Try:\n  curl ${base}/api/v1/healthcheck${products}\n  open ${base}/docs\n`)
  }
  return done
}

/**
 * Once, in words, before serving: the public development secret kept on purpose (JWT_SECRET set to
 * it; unset, development generates one) lets anyone who reaches the gateway sign an admin token.
 */
function warnAboutSecret(config: Config, names: string[]): void {
  if (config.nodeEnv === 'test' || !isDefaultSecret(config)) return
  if (!names.includes('gateway') && !names.includes('flows')) return
  const reach = config.host === '127.0.0.1' || config.host === '::1' || config.host === 'localhost' ? 'on this machine' : `on the network (HOST=${config.host})`
  say(
    `warning: JWT_SECRET is set to the public development default, so anyone who can reach the gateway ${reach} can sign their own admin token. ` +
      'Unset it to use a secret generated for this DATA_DIR, or set a secret of your own.',
  )
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
  const { Registry } = await import('../lib/metrics.js')
  const registry = new Registry()
  registerTracingMetrics(registry, tracing)
  return { tracing, registry }
}

/** A port someone else holds: one line that says which and what to do, not a stack. */
function portInUse(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number }
  if (e?.code !== 'EADDRINUSE' && e?.code !== 'EACCES') return undefined
  const where = `${e.address ?? ''}:${e.port ?? ''}`
  const what = e.code === 'EADDRINUSE' ? 'is already in use (another Flowgate, or another server)' : 'cannot be opened by this user'
  return `flowgate: ${where} ${what}; choose another port with PORT (gateway), CACHE_PROXY_PORT or CACHE_PROXY_METRICS_PORT`
}

main(process.argv.slice(2)).then(
  (code) => {
    // Everything was closed in order (or given up on at the deadline); timers a library left behind must not keep us up.
    process.exit(code)
  },
  (err: unknown) => {
    const port = portInUse(err)
    if (port !== undefined) console.error(port)
    else if (err instanceof ConfigError || err instanceof NatsMissingError || err instanceof NatsConnectError || err instanceof UsageError) console.error(err.message)
    else console.error('flowgate failed to start:', err)
    process.exitCode = err instanceof UsageError ? 2 : 1
  },
)
