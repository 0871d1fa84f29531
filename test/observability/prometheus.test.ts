// The dashboards and alert rules against a live Prometheus: Debian's `prometheus` scrapes a running
// `flowgate start` (one scrape target for every part) under a short load, then every PromQL
// expression of deploy/grafana/dashboards/*.json and deploy/prometheus/alerts.yml is evaluated
// through Prometheus's HTTP API and must return data, so a renamed metric breaks the build rather
// than a dashboard. `promtool check config` and `promtool test rules` run on deploy/ as shipped.
// Proxy routes in front of a real GraphQL server and a real WebSocket echo server feed the dashboard's
// proxy row.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parse } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNats, type NatsServer } from '../harness/nats.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { CLI, freePort, requireBinary, runCli, startProcess, tempDir, waitFor, type CliProcess, type ServerProcess } from '../harness/process.js'
import { startRedis, type RedisServer } from '../harness/redis.js'
import { startGraphqlUpstream, type GraphqlUpstream } from '../upstream/graphql-server.js'
import WebSocket, { WebSocketServer } from 'ws'

const DEPLOY = resolve('deploy')
const ALERTS = join(DEPLOY, 'prometheus', 'alerts.yml')
const EMAIL = 'root@prometheus.test'
const PASSWORD = 'prometheus-test-password'

let nats: NatsServer
let redis: RedisServer
let db: TestDatabase
let flowgate: CliProcess
let prometheus: ServerProcess
let graphql: GraphqlUpstream
let echo: WebSocketServer
let promtool = ''
let base = ''
let prom = ''

interface QueryResult {
  status: string
  data?: { resultType: string; result: unknown[] }
  error?: string
}

async function query(expr: string): Promise<QueryResult> {
  const res = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(expr)}`)
  return (await res.json()) as QueryResult
}

/** Every PromQL expression of the shipped dashboards, with Grafana's interval variable filled in. */
function dashboardExpressions(): Array<{ where: string; expr: string }> {
  const dir = join(DEPLOY, 'grafana', 'dashboards')
  const out: Array<{ where: string; expr: string }> = []
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const dashboard = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> }
    for (const panel of dashboard.panels) for (const t of panel.targets ?? []) out.push({ where: `${file}: ${panel.title}`, expr: t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s') })
  }
  return out
}

/** Every alert expression, its final comparison turned into `bool` so that it answers whether or not it fires. */
function alertExpressions(): Array<{ where: string; expr: string }> {
  const doc = parse(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
  return doc.groups.flatMap((g) =>
    g.rules.map((r) => {
      const m = /^(.*)\s(>|<|>=|<=|==|!=)\s([0-9.]+)\s*$/s.exec(r.expr)
      if (!m) throw new Error(`${r.alert}: the expression must end in one comparison with a number`)
      return { where: `alerts.yml: ${r.alert}`, expr: `${m[1]} ${m[2]} bool ${m[3]}` }
    }),
  )
}

const stop = async (p: CliProcess | undefined) => {
  if (!p || p.child.exitCode !== null) return
  p.child.kill('SIGTERM')
  await Promise.race([p.exit, new Promise((r) => setTimeout(r, 10_000))])
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  const bin = requireBinary('prometheus', ['/usr/bin/prometheus'], 'apt-get install prometheus')
  promtool = requireBinary('promtool', ['/usr/bin/promtool'], 'apt-get install prometheus')
  ;[nats, redis, db, graphql] = await Promise.all([startNats(), startRedis(), createTestDatabase('prometheus'), startGraphqlUpstream()])
  const [port, cachePort, promPort, echoPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
  echo = new WebSocketServer({ port: echoPort, host: '127.0.0.1' })
  echo.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
  const services = join(tempDir('prom-services'), 'services.json')
  writeFileSync(
    services,
    JSON.stringify({
      upstreams: { catalog: { targets: [{ url: graphql.url }] }, echo: { targets: [{ url: `http://127.0.0.1:${echoPort}` }] } },
      routes: [
        { path: '/graphql', upstream: 'catalog', auth: 'public', graphql: true },
        { path: '/ws/*', upstream: 'echo', auth: 'public', stripPrefix: true, websocket: true },
      ],
    }),
  )
  flowgate = runCli(['start'], {
    NATS_URL: nats.url,
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    CACHE_PROXY_PORT: String(cachePort),
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: tempDir('prom-data'),
    SERVICES_FILE: services,
    NODE_ENV: 'development',
    ADMIN_EMAIL: EMAIL,
    ADMIN_PASSWORD: PASSWORD,
    LOG_LEVEL: 'warn',
    DISCOVERY_INTERVAL_MS: '200',
    TRUST_PROXY: '127.0.0.1',
    // Generous for the load from 127.0.0.1 (Prometheus scrapes from there too); tight on one route for one client.
    RATE_LIMIT_CAPACITY: '100000',
    RATE_LIMIT_REFILL_PER_SEC: '100000',
    RATE_LIMIT_ROUTES: 'GET /api/v1/healthcheck=2:0.001',
    AUTOBLOCK_HITS: '3',
  })
  base = `http://127.0.0.1:${port}`
  await waitFor(() => flowgate.output().includes('Flowgate is up'), 60_000).catch(() => {
    throw new Error(`flowgate start did not come up:\n${flowgate.output()}`)
  })

  // Prometheus as shipped, but scraping the one target of `flowgate start` every second.
  const dir = tempDir('prometheus')
  const config = join(dir, 'prometheus.yml')
  writeFileSync(
    config,
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - ${ALERTS}\nscrape_configs:\n  - job_name: flowgate\n    static_configs:\n      - targets: ["127.0.0.1:${port}"]\n`,
  )
  expect(spawnSync(promtool, ['check', 'config', config], { encoding: 'utf8' }).status).toBe(0)
  prom = `http://127.0.0.1:${promPort}`
  prometheus = await startProcess({
    name: 'prometheus',
    bin,
    args: [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'],
    dir,
    ready: async () => (await fetch(`${prom}/-/ready`)).ok,
    timeoutMs: 30_000,
  })
  await waitFor(async () => (await query('up{job="flowgate"} == 1')).data?.result.length === 1, 30_000)
  await runLoad()
  // Rates need two scrapes after the load; wait for a few more.
  await waitFor(async () => Number(((await query('count_over_time(up{job="flowgate"}[1m])')).data?.result[0] as { value: [number, string] } | undefined)?.value[1]) >= 8, 30_000)
  await new Promise((r) => setTimeout(r, 3000))
}, 180_000)

afterAll(async () => {
  await prometheus?.stop()
  await stop(flowgate)
  echo?.close()
  await Promise.all([nats?.stop(), redis?.stop(), db?.drop(), graphql?.stop()])
})

/** A short mixed load: logins, cached and uncached reads, flow errors, unknown routes, a rate-limited and then blocked client. */
async function runLoad() {
  const json = { 'content-type': 'application/json' }
  const login = await fetch(`${base}/api/v1/admin/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: EMAIL, password: PASSWORD }) })
  expect(login.status).toBe(200)
  const token = ((await login.json()) as { data: { token: string } }).data.token
  const end = Date.now() + 6000
  let i = 0
  while (Date.now() < end) {
    i++
    await Promise.all([
      fetch(`${base}/api/v1/admin/list?page=1&limit=${1 + (i % 3)}`, { headers: { authorization: `Bearer ${token}` } }),
      fetch(`${base}/api/v1/orders/quote`, { method: 'POST', headers: json, body: JSON.stringify({ items: [{ sku: i % 4 === 0 ? 'unknown' : 'kettle', quantity: 1 }] }) }),
      fetch(`${base}/api/v1/no/such/route/${i}`),
      fetch(`${base}/graphql`, { method: 'POST', headers: json, body: JSON.stringify({ query: 'query Hello($n: String) { hello(name: $n) }', operationName: 'Hello', variables: { n: `${i}` } }) }),
      i % 10 === 1 ? echoOnce(`${base.replace('http', 'ws')}/ws/room`) : undefined,
    ])
    await new Promise((r) => setTimeout(r, 50))
  }
  const client = { 'x-forwarded-for': '198.51.100.9' }
  for (let n = 0; n < 6; n++) await fetch(`${base}/api/v1/healthcheck`, { headers: client })
  // Ops routes are never refused, even to a blocked address: the block shows on any other route.
  await waitFor(async () => (await fetch(`${base}/api/v1/nothing/here`, { headers: client })).status === 403, 15_000)
}

/** One WebSocket through the gateway: a message echoed, then closed. */
async function echoOnce(url: string): Promise<void> {
  const ws = new WebSocket(url)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => ws.send('ping'))
    ws.once('message', () => ws.close(1000))
    ws.once('close', () => resolve())
    ws.once('error', reject)
  })
}

/** The expressions Prometheus evaluates without error but to no series (each must succeed). */
async function withoutData(expressions: Array<{ where: string; expr: string }>): Promise<string[]> {
  const empty: string[] = []
  for (const { where, expr } of expressions) {
    const r = await query(expr)
    expect(r.status, `${where}: ${r.error ?? ''}`).toBe('success')
    if ((r.data?.result.length ?? 0) === 0) empty.push(`${where}: ${expr}`)
  }
  return empty
}

describe('dashboards and alert rules against a live Prometheus', () => {
  it('deploy/prometheus/prometheus.yml passes promtool check config; alerts.test.yml passes promtool test rules', () => {
    const config = spawnSync(promtool, ['check', 'config', join(DEPLOY, 'prometheus', 'prometheus.yml')], { encoding: 'utf8' })
    expect(config.status, config.stdout + config.stderr).toBe(0)
    const rules = spawnSync(promtool, ['test', 'rules', join(DEPLOY, 'prometheus', 'alerts.test.yml')], { encoding: 'utf8' })
    expect(rules.status, rules.stdout + rules.stderr).toBe(0)
    expect(rules.stdout).toContain('SUCCESS')
  })

  it('flowgate start serves every part from one scrape target, and promtool check metrics passes on it', async () => {
    const text = await (await fetch(`${base}/metrics`)).text()
    for (const family of ['flowgate_http_request_duration_seconds', 'flowgate_flow_duration_seconds', 'flowgate_subscriber_events_processed_total', 'flowgate_cache_hits_total', 'flowgate_trace_spans_dropped_total']) {
      expect(text).toContain(`# TYPE ${family} `)
    }
    const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' })
    expect(`${check.stdout}${check.stderr}`).toBe('')
    expect(check.status).toBe(0)
  })

  it('every dashboard query returns data', { timeout: 60_000 }, async () => {
    const expressions = dashboardExpressions()
    expect(expressions.length).toBeGreaterThanOrEqual(20)
    expect(await withoutData(expressions)).toEqual([])
  })

  it('every alert rule expression returns data (evaluated with bool), and Prometheus loaded the rules', { timeout: 60_000 }, async () => {
    const expressions = alertExpressions()
    expect(expressions.length).toBe(8)
    expect(await withoutData(expressions)).toEqual([])
    const rules = (await (await fetch(`${prom}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string }> }> } }
    const loaded = rules.data.groups.flatMap((g) => g.rules)
    expect(loaded).toHaveLength(8)
    expect(loaded.filter((r) => r.health !== 'ok' && r.health !== 'unknown')).toEqual([])
  })
})
