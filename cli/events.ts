// `flowgate events tail` and `flowgate blocks list|lift|add`: the gateway events and the blocklist
// for people without the NATS CLI.
import { AckPolicy, ConsumerEvents, DeliverPolicy, nanos, StringCodec, type ConsumerInfo } from 'nats'
import { parseAddress } from '../lib/address.js'
import { createBlocklistStore } from '../lib/blocklist.js'
import type { Config } from '../lib/config.js'
import { connectNats } from '../lib/nats.js'
import type { Logger } from '../lib/logger.js'
import { ensureGatewayStream } from '../lib/streams.js'
import { streams, subjects } from '../lib/subjects.js'
import { decodeEvent, EVENT_KINDS, type EventKind } from '../schemas/events.js'

export const EDGE_HELP = `  events tail [--all] [kind]     print gateway events as they arrive (--all: from the start of the stream)
  blocks list                    blocked addresses and when each block ends
  blocks add <address> [ttlSec]  block an address (default AUTOBLOCK_TTL_SEC)
  blocks lift <address>          lift a block on every gateway`

const sc = StringCodec()
const API_TIMEOUT_MS = 5000
/** A tail consumer nobody pulls from for this long is removed by the server. */
const TAIL_IDLE_MS = 60_000

/** Runs one events/blocks command; resolves with the exit code. */
export async function runEdgeCommand(
  command: 'events' | 'blocks',
  args: string[],
  config: Config,
  log: Logger,
  print: (line: string) => void,
  signal: AbortSignal,
): Promise<number> {
  const usage = () => {
    print(`usage:\n${EDGE_HELP}`)
    return 2
  }
  const [sub, ...rest] = args
  if (command === 'events' && sub !== 'tail') return usage()
  if (command === 'blocks' && sub !== 'list' && sub !== 'lift' && sub !== 'add') return usage()
  const nc = await connectNats(config, log, 'cli')
  try {
    if (command === 'events') return await tail(rest)
    if (sub === 'list') return await list()
    return await change(sub as 'lift' | 'add', rest)
  } finally {
    await nc.drain()
  }

  async function tail(opts: string[]): Promise<number> {
    const all = opts.includes('--all')
    const kind = opts.find((o) => !o.startsWith('--'))
    if (kind !== undefined && !(EVENT_KINDS as readonly string[]).includes(kind)) {
      print(`unknown kind "${kind}"; one of ${EVENT_KINDS.join(', ')}`)
      return 2
    }
    await ensureGatewayStream(nc, config, log)
    const jsm = await nc.jetstreamManager({ timeout: API_TIMEOUT_MS })
    // An ephemeral consumer made with one request, in the form every nats-server since 2.9 takes: its
    // refusal is shown as the server said it. (nats.js's ordered consumer sends `opt_start_seq` with
    // `deliver_policy: all`, which 2.9 refuses, and retries that refusal silently.)
    let info: ConsumerInfo
    try {
      info = await jsm.consumers.add(streams.gateway, {
        ack_policy: AckPolicy.None,
        deliver_policy: all ? DeliverPolicy.All : DeliverPolicy.New,
        filter_subject: kind ? subjects.gatewayEvent(kind as EventKind) : subjects.gatewayAll,
        inactive_threshold: nanos(TAIL_IDLE_MS), // the server removes it if this process dies
        mem_storage: true,
        num_replicas: 1,
      })
    } catch (err) {
      print(`cannot tail ${streams.gateway}: ${err instanceof Error ? err.message : String(err)}`)
      return 1
    }
    const consumer = await nc.jetstream({ timeout: API_TIMEOUT_MS }).consumers.get(streams.gateway, info.name)
    const messages = await consumer.consume({ max_messages: 256 })
    let failure: string | undefined
    const stop = () => void messages.close()
    if (signal.aborted) stop()
    signal.addEventListener('abort', stop, { once: true })
    void (async () => {
      for await (const s of await messages.status()) {
        if (s.type === ConsumerEvents.ConsumerDeleted || s.type === ConsumerEvents.ConsumerNotFound || s.type === ConsumerEvents.StreamNotFound) {
          failure = `${s.type}: ${String(s.data)}`
          stop()
        }
      }
    })()
    try {
      for await (const m of messages) {
        const decoded = decodeEvent(m.data)
        if (decoded.ok) {
          const { ts, kind: k, ...rest } = decoded.value
          print(`${new Date(ts).toISOString()} ${k.padEnd(17)} ${JSON.stringify(rest)}`)
        } else {
          print(`${m.subject} (unreadable: ${decoded.reason}) ${sc.decode(m.data).slice(0, 200)}`)
        }
      }
    } finally {
      signal.removeEventListener('abort', stop)
      await jsm.consumers.delete(streams.gateway, info.name).catch((err: unknown) => log.debug({ err }, 'tail consumer already gone'))
    }
    if (failure === undefined) return 0
    print(`tail stopped: ${failure}`)
    return 1
  }

  async function list(): Promise<number> {
    const now = Date.now()
    const blocks = await createBlocklistStore(nc, config).list(now)
    for (const { address, expiresAt, reason } of blocks) {
      print(`${address.padEnd(24)} until ${new Date(expiresAt).toISOString()} (${Math.ceil((expiresAt - now) / 1000)}s)  ${reason}`)
    }
    if (blocks.length === 0) print('no blocks')
    return 0
  }

  async function change(action: 'lift' | 'add', opts: string[]): Promise<number> {
    if (!opts[0]) return usage()
    const address = parseAddress(opts[0])
    if (!address) {
      print(`"${opts[0]}" is not an IPv4 or IPv6 address`)
      return 2
    }
    const store = createBlocklistStore(nc, config)
    if (action === 'lift') {
      if (!(await store.lift(address))) {
        print(`no block on ${address}`)
        return 1
      }
      print(`lifted ${address}`)
      return 0
    }
    const ttlSec = opts[1] === undefined ? config.autoBlockTtlSec : Number(opts[1])
    // The bucket's max_age removes entries after AUTOBLOCK_TTL_SEC, so no block can outlive it.
    if (!Number.isInteger(ttlSec) || ttlSec < 1 || ttlSec > config.autoBlockTtlSec) {
      print(`ttlSec must be an integer from 1 to ${config.autoBlockTtlSec} (AUTOBLOCK_TTL_SEC)`)
      return 2
    }
    const now = Date.now()
    const expiresAt = now + ttlSec * 1000
    await store.block({ address, reason: 'blocked by an admin (CLI)', blockedAt: now, expiresAt })
    print(`blocked ${address} until ${new Date(expiresAt).toISOString()}`)
    return 0
  }
}
