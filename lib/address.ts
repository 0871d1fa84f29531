// The address a limit or a block applies to, shared by the gateway (keys its buckets and blocks),
// the subscriber (writes blocks) and the CLI (parses what an admin types). The gateway takes it
// from Fastify's `request.ip`, which honours TRUST_PROXY (X-Forwarded-For is read only when the
// peer is a trusted proxy), so a spoofed header never buys a fresh bucket. An IPv6 client owns a
// whole /64, so it is keyed by that prefix.
import { isIPv4, isIPv6 } from 'node:net'

const MAPPED_V4 = '::ffff:'

/** `1.2.3.4` for IPv4 (also when IPv4-mapped), `2001:db8:1:2::/64` for IPv6, the input otherwise. */
export function addressKey(ip: string): string {
  if (ip.length <= 15 && ip.indexOf(':') === -1) return ip
  const lower = ip.toLowerCase()
  if (lower.startsWith(MAPPED_V4) && isIPv4(lower.slice(MAPPED_V4.length))) return lower.slice(MAPPED_V4.length)
  const zone = lower.indexOf('%')
  const bare = zone === -1 ? lower : lower.slice(0, zone)
  if (!isIPv6(bare)) return bare
  return `${prefix64(bare)}::/64`
}

/** The first four hextets of a valid IPv6 address, without leading zeros. */
function prefix64(ip: string): string {
  const gap = ip.indexOf('::')
  let groups: string[]
  if (gap === -1) groups = ip.split(':')
  else {
    const head = gap === 0 ? [] : ip.slice(0, gap).split(':')
    const tailText = ip.slice(gap + 2)
    const tail = tailText === '' ? [] : tailText.split(':')
    // An embedded IPv4 tail counts as two groups; it only matters when it falls in the first four.
    const tailGroups = tail.length > 0 && tail[tail.length - 1]!.includes('.') ? tail.length + 1 : tail.length
    groups = [...head, ...Array<string>(8 - head.length - tailGroups).fill('0'), ...tail]
  }
  return groups
    .slice(0, 4)
    .map((g) => (g.includes('.') ? '0' : g.replace(/^0+(?=.)/, '')))
    .join(':')
}

/** Accepts what an admin types (an IPv4, any IPv6, or a /64 key) as an address key. */
export function parseAddress(input: string): string | undefined {
  const text = input.trim()
  if (isIPv4(text)) return text
  const v6 = text.endsWith('/64') ? text.slice(0, -3) : text
  if (isIPv6(v6)) return addressKey(v6)
  return undefined
}
