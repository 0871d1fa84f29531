#!/usr/bin/env node
// The `flowgate` CLI: one subcommand per process, `start` for all of them. The only module that
// touches `process` (arguments, signals, exit codes) besides lib/config.ts reading the environment.
import '../lib/v8-flags.js'
import type { ChildProcess } from 'node:child_process'
import { ConfigError, describeConfig, isDefaultSecret, loadConfig, type Config } from '../lib/config.js'
import { createLogger, type Logger } from '../lib/logger.js'
import type { Running } from '../lib/shutdown.js'
import { ensureNats, NatsMissingError } from './dev-nats.js'

type Starter = (config: Config, log: Logger) => Promise<Running>
const say = (line: string) => console.log(line)

// Loaded on demand so that `flowgate flows` does not import the gateway, and so on.
// In start order for `flowgate start` (the proxy before the flows that use it, the gateway last so
// it finds the flows at once); stopped in reverse.
// A Map: the command name is what the user typed (`flowgate constructor` must be an unknown command).
const processes = new Map<string, () => Promise<Starter>>([
  ['cache-proxy', async () => (await import('../cache-proxy/main.js')).start],
  [
    'flows',
    async () => {
      const { start } = await import('../flows/main.js')
      return (config, log) => start(config, log, say)
    },
  ],
  ['subscriber', async () => (await import('../events/main.js')).start],
  ['gateway', async () => (await import('../server/main.js')).start],
])

const HELP = `flowgate <command>

  start         everything for local use (starts a local nats-server if none is running)
  gateway       the HTTP gateway
  flows         a flow worker (run several to scale)
  subscriber    the JetStream consumer acting on gateway events (auto-block, alerts)
  cache-proxy   the RESP caching proxy in front of Redis
  events tail [--all] [kind]     print gateway events as they arrive
  blocks list | add <address> [ttlSec] | lift <address>
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
    const code = await runEdgeCommand(command, rest, config, log, (line) => console.log(line), stop.signal)
    log.flush()
    return code
  }

  let devNats: ChildProcess | undefined
  const started: Running[] = []
  const names = command === 'start' ? [...processes.keys()] : [command]
  for (const name of names) if (!processes.has(name)) throw new UsageError(`unknown command "${name}"\n\n${HELP}`)
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`)

  const stopAll = async (): Promise<boolean> => {
    let clean = true
    for (const r of started.reverse()) clean = (await r.close()) && clean
    devNats?.kill('SIGTERM')
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

  try {
    if (command === 'start') devNats = await ensureNats(config, (line) => console.log(line))
    for (const name of names) {
      const starter = await processes.get(name)!()
      started.push(await starter(config, log))
    }
  } catch (err) {
    await stopAll()
    throw err
  }
  for (const r of started) console.log(`✔ ${r.describe}`)
  if (command === 'start' || command === 'gateway') {
    const base = `http://localhost:${config.port}`
    console.log(`\nFlowgate is up. Try:\n  curl ${base}/api/v1/healthcheck\n  open ${base}/docs\n`)
  }
  return done
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => {
    // Everything was closed in order (or given up on at the deadline); timers a library left behind must not keep us up.
    process.exit(code)
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof NatsMissingError || err instanceof UsageError) console.error(err.message)
    else console.error('flowgate failed to start:', err)
    process.exitCode = err instanceof UsageError ? 2 : 1
  },
)
