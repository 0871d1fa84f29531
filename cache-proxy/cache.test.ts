import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { HotKeys, LocalCache, newStats } from './cache.js'
import { compileGlob, compilePolicy, PolicyError, ruleFor } from './policy.js'

describe('LocalCache', () => {
  it('stays within its byte bound, evicting unreferenced entries first', () => {
    const stats = newStats()
    const cache = new LocalCache(4000, stats)
    const v = Buffer.alloc(500)
    for (let i = 0; i < 5; i++) cache.set(`k${i}`, v, [`k${i}`], 1e15, 1e15, null)
    cache.get('k0', 0) // referenced: gets a second chance
    for (let i = 5; i < 20; i++) {
      cache.set(`k${i}`, v, [`k${i}`], 1e15, 1e15, null)
      expect(cache.bytes).toBeLessThanOrEqual(4000)
    }
    expect(stats.evictions).toBeGreaterThan(0)
    expect(cache.set('huge', Buffer.alloc(5000), ['huge'], 1e15, 1e15, null)).toBe(false)
  })

  it('expires entries at their hard TTL', () => {
    const cache = new LocalCache(1e6, newStats())
    cache.set('a', Buffer.from('x'), ['a'], 1000, 800, null)
    expect(cache.get('a', 999)).toBeDefined()
    expect(cache.get('a', 1000)).toBeUndefined()
    expect(cache.size).toBe(0)
  })

  it('drops every entry read from an invalidated key and marks fills in flight stale', () => {
    const cache = new LocalCache(1e6, newStats())
    cache.set('GET a', Buffer.from('1'), ['a'], 1e15, 1e15, null)
    cache.set('MGET a b', Buffer.from('2'), ['a', 'b'], 1e15, 1e15, null)
    cache.set('GET b', Buffer.from('3'), ['b'], 1e15, 1e15, null)
    const fill = { stale: false }
    cache.track(fill, ['a'])
    expect(cache.invalidate('a')).toBe(2)
    expect(fill.stale).toBe(true)
    expect(cache.get('GET b', 0)).toBeDefined()
    const later = { stale: false }
    cache.track(later, ['b'])
    cache.flush()
    expect(later.stale).toBe(true)
    expect(cache.size).toBe(0)
    expect(cache.bytes).toBe(0)
  })
})

describe('HotKeys', () => {
  it('finds the hottest keys with bounded memory, and cools them down', () => {
    let now = 0
    const hot = new HotKeys({ sampleRate: 1, capacity: 8, minScore: 50, halfLifeMs: 1000 }, () => now)
    for (let i = 0; i < 10_000; i++) {
      hot.record('hot')
      hot.record(`cold${i}`)
    }
    expect(hot.tracked).toBeLessThanOrEqual(8)
    expect(hot.isHot('hot')).toBe(true)
    expect(hot.top(1)[0]!.key).toBe('hot')
    now += 20_000
    expect(hot.isHot('hot')).toBe(false)
  })
})

describe('policy', () => {
  it('accepts the example policy shipped in deploy/', () => {
    const p = compilePolicy(readFileSync(new URL('../deploy/cache-policy.example.yaml', import.meta.url), 'utf8'))
    expect(ruleFor(p, 'GET', 'session:1')).toBeUndefined()
    expect(ruleFor(p, 'HGETALL', 'user:1')?.ttlMs).toBe(60_000)
    expect(p.refusal('KEYS', undefined)).toBe('policy')
    expect(p.refusal('CONFIG', 'SET')).toBe('admin')
    expect(p.refusal('CONFIG', undefined)).toBeUndefined()
    expect(p.refusal('GET', undefined)).toBeUndefined()
  })

  it('compiles Redis globs', () => {
    expect(compileGlob('user:*')('user:1')).toBe(true)
    expect(compileGlob('user:*')('admin:1')).toBe(false)
    expect(compileGlob('a?c')('abc')).toBe(true)
    expect(compileGlob('h[ae]llo')('hello')).toBe(true)
    expect(compileGlob('h[^e]llo')('hello')).toBe(false)
    expect(compileGlob('*:list:*')('admin:list:2')).toBe(true)
  })

  it('picks the first matching rule and its TTL', () => {
    const p = compilePolicy(`version: 1
rules:
  - commands: [GET]
    keys: ['session:*']
    cache: false
  - commands: [GET, HGETALL]
    keys: ['user:*']
    ttlSec: 60
`)
    expect(ruleFor(p, 'GET', 'user:1')?.ttlMs).toBe(60_000)
    expect(ruleFor(p, 'GET', 'session:1')).toBeUndefined()
    expect(ruleFor(p, 'GET', 'other')).toBeUndefined()
  })

  it('lists every problem of a bad policy', () => {
    const problemsOf = (text: string) => {
      try {
        compilePolicy(text)
      } catch (err) {
        expect(err).toBeInstanceOf(PolicyError)
        return (err as PolicyError).problems.join('\n')
      }
      return expect.fail('should throw')
    }
    expect(problemsOf('version: 1\nbogus: 1\n')).toContain('bogus')
    const problems = problemsOf(`version: 1
maxTtlSec: 10
rules:
  - commands: [SET, GET]
    ttlSec: 20
    keys: ['h[x']
`)
    expect(problems).toMatch(/SET is not a deterministic read/)
    expect(problems).toMatch(/above maxTtlSec/)
    expect(problems).toMatch(/unclosed \[/)
    expect(() => compilePolicy('version: [')).toThrow(/not valid YAML/)
  })
})
