// deploy/ and docker-compose.dev.yaml hang together (no Docker here to run them): every Prometheus
// target is a compose service serving /metrics on that port, Grafana's provisioning points at the
// files and the datasource the dashboard uses, and every path the Dockerfile copies exists.
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parse } from 'yaml'
import { describe, expect, it } from 'vitest'
import { describeConfig } from '../../lib/config.js'

const root = resolve('.')
const read = (path: string) => readFileSync(join(root, path), 'utf8')

interface ComposeService {
  command?: string[]
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  profiles?: string[]
}
const compose = parse(read('docker-compose.dev.yaml'), { merge: true }) as { services: Record<string, ComposeService> }
const prometheus = parse(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> }

describe('the full development stack', () => {
  it('has NATS, PostgreSQL, Redis, each Flowgate process, Jaeger (OTLP), Prometheus and Grafana', () => {
    for (const name of ['nats', 'postgres', 'redis', 'flowgate-gateway', 'flowgate-flows', 'flowgate-subscriber', 'flowgate-cache-proxy', 'jaeger', 'prometheus', 'grafana']) {
      expect(compose.services[name], name).toBeDefined()
    }
    expect(compose.services['flowgate-gateway']!.command).toEqual(['gateway'])
    expect(compose.services['flowgate-flows']!.environment!.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://jaeger:4318')
    expect(compose.services.jaeger!.environment!.COLLECTOR_OTLP_ENABLED).toBe('true')
  })

  it('runs the full stack on a locked-down bus: keys made once by flowgate nats setup, each process with its role\'s seed', () => {
    expect(compose.services['nats-keys']!.command).toEqual(['nats', 'setup', '/nats', '--listen', '0.0.0.0:4222', '--store', '/data'])
    expect(compose.services['nats-locked']!.command).toEqual(['-c', '/nats/nats-server.conf'])
    for (const [service, role] of [['flowgate-gateway', 'gateway'], ['flowgate-flows', 'flows'], ['flowgate-subscriber', 'subscriber']] as const) {
      const env = compose.services[service]!.environment!
      expect(env.NATS_URL, service).toBe('nats://nats-locked:4222')
      expect(env.NATS_NKEY_SEED, service).toBe(`/nats/${role}.nk`)
    }
    // In a container the gateway must listen beyond loopback (development's default is 127.0.0.1).
    expect(compose.services['flowgate-gateway']!.environment!.HOST).toBe('0.0.0.0')
  })

  it('scrapes every Flowgate process where compose makes it serve /metrics', () => {
    const portOf: Record<string, string> = {
      'flowgate-gateway': compose.services['flowgate-gateway']!.environment!.PORT ?? '3000',
      'flowgate-flows': compose.services['flowgate-flows']!.environment!.FLOW_METRICS_PORT!,
      'flowgate-subscriber': compose.services['flowgate-subscriber']!.environment!.SUBSCRIBER_METRICS_PORT!,
      'flowgate-cache-proxy': compose.services['flowgate-cache-proxy']!.environment!.CACHE_PROXY_METRICS_PORT!,
    }
    const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets))
    expect(targets.sort()).toEqual(Object.entries(portOf).map(([host, port]) => `${host}:${port}`).sort())
    expect(compose.services['flowgate-flows']!.environment!.METRICS_HOST).toBe('0.0.0.0')
    // Every variable compose sets is one Flowgate reads (or the image's own).
    const known = new Set(describeConfig().map((c) => c.env))
    for (const name of ['flowgate-gateway', 'flowgate-flows', 'flowgate-subscriber', 'flowgate-cache-proxy']) {
      for (const key of Object.keys(compose.services[name]!.environment!)) expect(known.has(key), `${name}: ${key}`).toBe(true)
    }
  })

  it('mounts the Prometheus rules and Grafana provisioning that exist, with the datasource uid the dashboard uses', () => {
    expect(compose.services.prometheus!.volumes).toContain('./deploy/prometheus:/etc/prometheus:ro')
    const datasources = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: Array<{ uid: string; url: string }> }
    expect(datasources.datasources[0]!.url).toBe('http://prometheus:9090')
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/flowgate.json')) as { panels: Array<{ type: string; datasource?: { uid: string }; targets?: unknown[] }> }
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) expect(panel.datasource?.uid).toBe(datasources.datasources[0]!.uid)
    const providers = parse(read('deploy/grafana/provisioning/dashboards/flowgate.yml')) as { providers: Array<{ options: { path: string } }> }
    expect(compose.services.grafana!.volumes).toContain(`./deploy/grafana/dashboards:${providers.providers[0]!.options.path}:ro`)
    for (const volume of [...compose.services.grafana!.volumes!, ...compose.services.prometheus!.volumes!]) expect(existsSync(join(root, volume.split(':')[0]!))).toBe(true)
  })

  it('builds an image from paths that exist', () => {
    const copies = read('Dockerfile')
      .split('\n')
      .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
      .flatMap((l) => l.split(/\s+/).slice(1, -1))
    expect(copies.length).toBeGreaterThan(5)
    for (const path of copies) expect(existsSync(join(root, path)), path).toBe(true)
  })
})
