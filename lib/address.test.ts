import { describe, expect, it } from 'vitest'
import { addressKey, createAddressSet, parseAddress, parseCidr } from './address.js'
import { addressOfBlockKey, blockKey } from './blocklist.js'

describe('client address keys', () => {
  it('keeps IPv4 and unwraps IPv4-mapped IPv6', () => {
    expect(addressKey('203.0.113.7')).toBe('203.0.113.7')
    expect(addressKey('::ffff:203.0.113.7')).toBe('203.0.113.7')
    expect(addressKey('::FFFF:203.0.113.7')).toBe('203.0.113.7')
  })

  it('keys IPv6 by /64 so one host cannot rotate through its prefix', () => {
    const a = addressKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')
    const b = addressKey('2001:0db8:0001:0002::1')
    expect(a).toBe('2001:db8:1:2::/64')
    expect(b).toBe(a)
    expect(addressKey('2001:db8:1:3::1')).not.toBe(a)
    expect(addressKey('::1')).toBe('0:0:0:0::/64')
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    expect(addressKey('2001:db8::')).toBe('2001:db8:0:0::/64')
  })

  it('round-trips addresses through KV keys and rejects malformed keys', () => {
    for (const a of ['203.0.113.7', '2001:db8:1:2::/64']) expect(addressOfBlockKey(blockKey(a))).toBe(a)
    expect(blockKey('2001:db8:1:2::/64')).toMatch(/^[-/_=.A-Za-z0-9]+$/)
    for (const bad of ['', 'hello', '1.2.3', '999.1.1.1', '2001_db8__/64', '2001_db8_1_2_3__/64', 'a'.repeat(100), '1.2.3.4.5', '../etc']) {
      expect(addressOfBlockKey(bad)).toBeUndefined()
    }
  })

  it('parses what an admin types', () => {
    expect(parseAddress(' 203.0.113.7 ')).toBe('203.0.113.7')
    expect(parseAddress('2001:db8:1:2::99')).toBe('2001:db8:1:2::/64')
    expect(parseAddress('2001:db8:1:2::/64')).toBe('2001:db8:1:2::/64')
    expect(parseAddress('not-an-ip')).toBeUndefined()
  })
})

describe('address ranges (AUTOBLOCK_EXEMPT)', () => {
  it('matches IPv4 keys by CIDR and IPv6 /64 keys by overlap', () => {
    const exempt = createAddressSet(['127.0.0.0/8', '::1', '10.1.0.0/16', '2001:db8::/32'])
    for (const ip of ['127.0.0.1', '127.9.9.9', '::ffff:127.0.0.1', '10.1.2.3', '::1', '2001:db8:1:2::5']) expect(exempt(addressKey(ip)), ip).toBe(true)
    for (const ip of ['10.2.0.1', '8.8.8.8', '2001:db9::1', 'fe80::1', '::2:1:0:0:1']) expect(exempt(addressKey(ip)), ip).toBe(false)
    expect(createAddressSet([])('127.0.0.1')).toBe(false)
  })

  it('parses an address or a CIDR, and refuses anything else', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' })
    expect(parseCidr('::1')).toEqual({ address: '::1', prefix: 128, family: 'ipv6' })
    for (const bad of ['localhost', '1.2.3.4/33', '1.2.3.4/x', '::1/129', '', '1.2.3.4/']) expect(parseCidr(bad), bad).toBeUndefined()
  })
})
