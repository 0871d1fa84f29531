// The address a limit or a block applies to, shared by the gateway (keys its buckets and blocks),
// the subscriber (writes blocks) and the CLI (parses what an admin types). The gateway takes it
// from Fastify's `request.ip`, which honours TRUST_PROXY (X-Forwarded-For is read only when the
// peer is a trusted proxy), so a spoofed header never buys a fresh bucket. An IPv6 client owns a
// whole /64, so it is keyed by that prefix.
import { BlockList, isIPv4, isIPv6 } from 'node:net'

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

export interface Cidr {
  address: string
  prefix: number
  family: 'ipv4' | 'ipv6'
}

/** `10.0.0.0/8`, `::1/128`, or a bare address (a single host); undefined when it is neither. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/')
  const address = (slash === -1 ? text : text.slice(0, slash)).trim()
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined
  if (family === undefined) return undefined
  const max = family === 'ipv4' ? 32 : 128
  if (slash === -1) return { address, prefix: max, family }
  const bits = text.slice(slash + 1).trim()
  const prefix = Number(bits)
  if (!/^\d{1,3}$/.test(bits) || prefix > max) return undefined
  return { address, prefix, family }
}

/**
 * A set of address ranges that answers for address keys (what addressKey() returns). An IPv6 key
 * stands for its whole /64, so it matches a range that overlaps that /64: `::1` exempts the
 * loopback key `0:0:0:0::/64`, in which no other real client can be.
 */
export function createAddressSet(cidrs: readonly string[]): (key: string) => boolean {
  const ranges = cidrs.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== undefined)
  if (ranges.length === 0) return () => false
  const list = new BlockList()
  for (const r of ranges) list.addSubnet(r.address, r.prefix, r.family)
  // Ranges narrower than a /64: matched when they lie inside the key's /64.
  const narrow = ranges.filter((r) => r.family === 'ipv6' && r.prefix > 64)
  return (key) => {
    if (!key.endsWith('::/64')) return isIPv4(key) && list.check(key, 'ipv4')
    const network = key.slice(0, -3)
    if (!isIPv6(network)) return false
    if (list.check(network, 'ipv6')) return true
    if (narrow.length === 0) return false
    const own = new BlockList()
    own.addSubnet(network, 64, 'ipv6')
    return narrow.some((r) => own.check(r.address, 'ipv6'))
  }
}
