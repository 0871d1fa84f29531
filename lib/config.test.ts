import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ConfigError, describeConfig, effectiveSettings, isDefaultSecret, loadConfig } from './config.js'
import { ensureDevSecret } from './dev-secret.js'

const dataDir = () => mkdtempSync(join(tmpdir(), 'flowgate-config-'))

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

  it('in development, keeps a random JWT secret in DATA_DIR: made once by a serving command, the same ever after', () => {
    const dir = dataDir()
    // a command that serves nothing creates nothing (and signs nothing)
    expect(isDefaultSecret(loadConfig({ DATA_DIR: dir }))).toBe(true)
    const first = loadConfig({ DATA_DIR: dir }, { keepSecret: true })
    expect(isDefaultSecret(first)).toBe(false)
    expect(first.jwtSecret.length).toBeGreaterThanOrEqual(32)
    expect(readFileSync(join(dir, 'jwt-secret'), 'utf8').trim()).toBe(first.jwtSecret)
    expect(statSync(join(dir, 'jwt-secret')).mode & 0o777).toBe(0o600)
    expect(loadConfig({ DATA_DIR: dir }, { keepSecret: true }).jwtSecret).toBe(first.jwtSecret)
    expect(loadConfig({ DATA_DIR: dir }).jwtSecret).toBe(first.jwtSecret)
    // another data directory, another secret
    expect(loadConfig({ DATA_DIR: dataDir() }, { keepSecret: true }).jwtSecret).not.toBe(first.jwtSecret)
    // JWT_SECRET wins; test and production never make one
    expect(loadConfig({ DATA_DIR: dir, JWT_SECRET: 'mine' }, { keepSecret: true }).jwtSecret).toBe('mine')
    const other = dataDir()
    expect(isDefaultSecret(loadConfig({ DATA_DIR: other, NODE_ENV: 'test' }, { keepSecret: true }))).toBe(true)
    expect(() => loadConfig({ DATA_DIR: other, NODE_ENV: 'production' }, { keepSecret: true })).toThrow(/JWT_SECRET: must be set in production/)
  })

  it('gives processes that start together one secret, and says so when the data dir cannot hold it', () => {
    const dir = dataDir()
    const secrets = new Set(Array.from({ length: 5 }, () => ensureDevSecret(dir).secret))
    expect(secrets.size).toBe(1)
    const file = join(dataDir(), 'a-file')
    writeFileSync(file, 'not a directory')
    expect(() => loadConfig({ DATA_DIR: file, PORT: 'x' }, { keepSecret: true })).toThrow(
      expect.objectContaining({ problems: [expect.stringMatching(/^JWT_SECRET: unset, and no secret can be kept in .*a-file\/jwt-secret/), expect.stringMatching(/^PORT: /)] }),
    )
  })

  it('listens on loopback unless HOST says otherwise; on every interface in production', () => {
    expect(loadConfig({ DATA_DIR: dataDir() }).host).toBe('127.0.0.1')
    expect(loadConfig({ NODE_ENV: 'test' }).host).toBe('127.0.0.1')
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }).host).toBe('0.0.0.0')
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), HOST: '10.0.0.5' }).host).toBe('10.0.0.5')
    expect(loadConfig({ HOST: '0.0.0.0', DATA_DIR: dataDir() }).host).toBe('0.0.0.0')
  })

  it('shows the values in effect and where each came from, secrets and URL credentials masked', () => {
    const env = {
      NODE_ENV: 'production',
      PORT: '8080',
      JWT_SECRET: 's3cret-'.repeat(6),
      ADMIN_PASSWORD: 'hunter2-hunter2',
      DATABASE_URL: 'postgres://app:pa55word@db:5432/flowgate',
      NATS_URL: 'nats://token123@n1:4222, nats://user:pw@n2:4222',
      REDIS_URL: 'redis://:redispass@cache:6379',
    }
    const rows = new Map(effectiveSettings(loadConfig(env), env).map((r) => [r.env, r]))
    expect(rows.get('PORT')).toMatchObject({ value: '8080', origin: 'environment' })
    expect(rows.get('HOST')).toMatchObject({ value: '0.0.0.0', origin: 'default' })
    expect(rows.get('JWT_SECRET')).toMatchObject({ value: '********', origin: 'environment' })
    expect(rows.get('ADMIN_PASSWORD')!.value).toBe('********')
    expect(rows.get('DATABASE_URL')!.value).toBe('postgres://***@db:5432/flowgate')
    expect(rows.get('NATS_URL')!.value).toBe('nats://***@n1:4222, nats://***@n2:4222')
    expect(rows.get('REDIS_URL')!.value).toBe('redis://***@cache:6379')
    const text = JSON.stringify([...rows.values()])
    for (const secret of ['s3cret', 'hunter2', 'pa55word', 'token123', 'redispass']) expect(text).not.toContain(secret)
    const dev = { DATA_DIR: dataDir() }
    const devRows = new Map(effectiveSettings(loadConfig(dev, { keepSecret: true }), dev).map((r) => [r.env, r]))
    expect(devRows.get('JWT_SECRET')).toMatchObject({ origin: 'generated', value: expect.stringMatching(/^\*{8} \(kept in .*jwt-secret\)$/) })
  })
})
