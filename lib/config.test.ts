import { describe, expect, it } from 'vitest'
import { ConfigError, describeConfig, loadConfig } from './config.js'

describe('loadConfig', () => {
  it('fills defaults and converts types from the environment', () => {
    const config = loadConfig({ PORT: '8080', TRUST_PROXY: '10.0.0.1, 192.168.0.0/16', EVENTS_ENABLED: 'false', RATE_LIMIT_REFILL_PER_SEC: '0.5' })
    expect(config.port).toBe(8080)
    expect(config.natsUrl).toBeUndefined()
    expect(config.trustProxy).toEqual(['10.0.0.1', '192.168.0.0/16'])
    expect(config.eventsEnabled).toBe(false)
    expect(config.rateLimitRefillPerSec).toBe(0.5)
    expect(Object.isFrozen(config)).toBe(true)
  })

  it('lists every invalid variable at once, by its environment name', () => {
    let error: unknown
    try {
      loadConfig({ PORT: '70000', REQUEST_TIMEOUT_MS: 'soon', LOG_LEVEL: 'loud' })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems.join('\n')
    expect(problems).toMatch(/^PORT: /m)
    expect(problems).toMatch(/^REQUEST_TIMEOUT_MS: /m)
    expect(problems).toMatch(/^LOG_LEVEL: /m)
  })

  it('refuses to start in production with the default or a short JWT secret', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET: must be set in production/)
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short' })).toThrow(/at least 32 characters/)
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }).nodeEnv).toBe('production')
  })

  it('describes every setting with its variable name (the README table comes from here)', () => {
    const names = describeConfig().map((c) => c.env)
    for (const name of ['PORT', 'HOST', 'NATS_URL', 'DATABASE_URL', 'REDIS_URL', 'CACHE_PROXY_PORT', 'JWT_SECRET', 'RATE_LIMIT_CAPACITY', 'RATE_LIMIT_REFILL_PER_SEC', 'TRUST_PROXY', 'LOG_LEVEL', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'CACHE_POLICY_FILE']) {
      expect(names).toContain(name)
    }
  })
})
