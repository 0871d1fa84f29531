// `flowgate upstream register <service> <url>`: joins an HTTP service instance to the proxy routes
// of every gateway watching the services KV bucket (SERVICES_KV_ENABLED), renews the registration
// every third of its TTL while it runs, and removes it on SIGINT/SIGTERM. `flowgate upstream list`
// prints the live registrations.
import type { Config } from '../lib/config.js'
import type { Logger } from '../lib/logger.js'
import { connectNats } from '../lib/nats.js'
import { instanceKey, MAX_REGISTRATION_TTL_SEC, openServicesBucket, readInstance, registerInstance } from '../lib/service-registry.js'

export const UPSTREAM_HELP = `  upstream register <service> <url> [--weight n] [--ttl sec] [--id id]
                                 register an HTTP instance for proxy routes; renewed until stopped
  upstream list                  live registrations`

const SERVICE = /^[a-z][a-z0-9_-]{0,62}$/
const ID = /^[A-Za-z0-9_-]{1,64}$/

export async function runUpstreamCommand(args: string[], config: Config, log: Logger, print: (line: string) => void, signal: AbortSignal): Promise<number> {
  const [sub, ...rest] = args
  const usage = (why?: string) => {
    if (why) print(why)
    print(`usage:\n${UPSTREAM_HELP}`)
    return 2
  }
  if (sub !== 'register' && sub !== 'list') return usage()
  let reg: { service: string; url: string; weight: number; ttlSec: number; id: string | undefined } | undefined
  if (sub === 'register') {
    const positional: string[] = []
    const flags: Record<string, string> = {}
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!
      if (a.startsWith('--')) flags[a.slice(2)] = rest[++i] ?? ''
      else positional.push(a)
    }
    const [service, url] = positional
    if (!service || !url || positional.length > 2) return usage()
    if (!SERVICE.test(service)) return usage(`service "${service}": a lower-case letter then up to 62 of [a-z0-9_-]`)
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return usage(`"${url}" is not a URL`)
    }
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.username || parsed.password || parsed.search) return usage('the URL must be http(s), without credentials or query')
    const weight = flags.weight === undefined ? 1 : Number(flags.weight)
    const ttlSec = flags.ttl === undefined ? config.servicesKvTtlSec : Number(flags.ttl)
    if (!Number.isInteger(weight) || weight < 1 || weight > 1000) return usage('--weight: an integer from 1 to 1000')
    if (!Number.isInteger(ttlSec) || ttlSec < 3 || ttlSec > MAX_REGISTRATION_TTL_SEC) return usage(`--ttl: an integer from 3 to ${MAX_REGISTRATION_TTL_SEC}`)
    if (flags.id !== undefined && !ID.test(flags.id)) return usage('--id: 1 to 64 of [A-Za-z0-9_-]')
    reg = { service, url: parsed.href.replace(/\/$/, ''), weight, ttlSec, id: flags.id }
  }
  const nc = await connectNats(config, log, 'registrar')
  try {
    const kv = await openServicesBucket(nc)
    if (reg === undefined) {
      const now = Date.now()
      let n = 0
      for await (const key of await kv.keys()) {
        const e = await kv.get(key)
        if (e === null || e.operation !== 'PUT') continue
        const read = readInstance(key, e.value)
        if (!read.ok || read.value.expiresAt <= now) continue
        n++
        print(`${read.value.service.padEnd(20)} ${read.value.url.padEnd(40)} weight ${read.value.weight}  expires in ${Math.ceil((read.value.expiresAt - now) / 1000)}s`)
      }
      if (n === 0) print('no registrations')
      return 0
    }
    const { service, url, weight, ttlSec } = reg
    const key = instanceKey(service, url, reg.id)
    await registerInstance(kv, key, { service, url, weight }, ttlSec)
    print(`registered ${url} as ${key} (weight ${weight}, ttl ${ttlSec}s); renewing every ${Math.ceil(ttlSec / 3)}s until stopped`)
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        registerInstance(kv, key, { service, url, weight }, ttlSec).catch((err: unknown) => log.warn({ err }, 'renewing the registration failed; trying again'))
      }, Math.ceil(ttlSec / 3) * 1000)
      signal.addEventListener(
        'abort',
        () => {
          clearInterval(timer)
          resolve()
        },
        { once: true },
      )
    })
    await kv.delete(key)
    print(`deregistered ${key}`)
    return 0
  } finally {
    await nc.drain()
  }
}
