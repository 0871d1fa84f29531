// Every process's /metrics, from the built CLI run as three processes (gateway, flow worker on
// FLOW_METRICS_PORT, subscriber on SUBSCRIBER_METRICS_PORT) under a short load that succeeds, fails,
// gets rate limited and then blocked: each output passes `promtool check metrics` (Debian's
// prometheus package) and carries the series the dashboards read; a scrape while the worker stops
// gets an answer or a refused connection, never a hang or a 5xx.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNats, type NatsServer } from '../harness/nats.js'
import { createTestDatabase, type TestDatabase } from '../harness/postgres.js'
import { CLI, freePort, requireBinary, runCli, waitFor, type CliProcess } from '../harness/process.js'

let nats: NatsServer
let db: TestDatabase
let gateway: CliProcess
let flows: CliProcess
let subscriber: CliProcess
let base = ''
let flowMetrics = ''
let subscriberMetrics = ''
let promtool = ''

const stop = async (p: CliProcess | undefined) => {
  if (!p || p.child.exitCode !== null) return
  p.child.kill('SIGTERM')
  await Promise.race([p.exit, new Promise((r) => setTimeout(r, 8000))])
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`)
  promtool = requireBinary('promtool', ['/usr/bin/promtool'], 'apt-get install prometheus')
  ;[nats, db] = await Promise.all([startNats(), createTestDatabase('metrics')])
  const [port, flowPort, subPort] = await Promise.all([freePort(), freePort(), freePort()])
  const common = { NATS_URL: nats.url, LOG_LEVEL: 'warn', NODE_ENV: 'test', AUTOBLOCK_HITS: '3', AUTOBLOCK_WINDOW_SEC: '60' }
  flows = runCli(['flows'], { ...common, DATABASE_URL: db.url, FLOW_METRICS_PORT: String(flowPort), CACHE_URL: 'redis://127.0.0.1:1' })
  subscriber = runCli(['subscriber'], { ...common, SUBSCRIBER_METRICS_PORT: String(subPort) })
  // The load comes from a documentation address behind a trusted proxy (a header only): that client is
  // limited and blocked, while the scrapes from 127.0.0.1 go on.
  gateway = runCli(['gateway'], {
    ...common,
    PORT: String(port),
    HOST: '127.0.0.1',
    DISCOVERY_INTERVAL_MS: '200',
    TRUST_PROXY: '127.0.0.1',
    RATE_LIMIT_ROUTES: 'GET /api/v1/healthcheck=2:0.001',
  })
  base = `http://127.0.0.1:${port}`
  flowMetrics = `http://127.0.0.1:${flowPort}/metrics`
  subscriberMetrics = `http://127.0.0.1:${subPort}/metrics`
  await waitFor(async () => (await fetch(flowMetrics)).ok && (await fetch(subscriberMetrics)).ok, 30_000).catch(() => {
    throw new Error(`metrics ports not up:\n${flows.output()}\n${subscriber.output()}`)
  })
  await waitFor(async () => (await fetch(`${base}/api/v1/orders/quote`, { method: 'POST' })).status === 400, 30_000)

  // A short load: flows that succeed and fail, unknown routes, then the rate limit and the block it leads to.
  const client = { 'x-forwarded-for': '203.0.113.7' }
  const quote = (body: unknown) =>
    fetch(`${base}/api/v1/orders/quote`, { method: 'POST', headers: { ...client, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  expect((await quote({ items: [{ sku: 'kettle', quantity: 2 }] })).status).toBe(200)
  expect((await quote({ items: [{ sku: 'no-such-sku', quantity: 1 }] })).status).toBe(404)
  expect((await quote({ items: [] })).status).toBe(400)
  expect((await fetch(`${base}/api/v1/nothing/here`, { headers: client })).status).toBe(404)
  let limited = 0
  for (let i = 0; i < 20 && limited < 4; i++) if ((await fetch(`${base}/api/v1/healthcheck?x=${i}`, { headers: client })).status === 429) limited++
  expect(limited).toBe(4)
  // Ops routes are never refused, even to a blocked address: the block shows on any other route.
  await waitFor(async () => (await fetch(`${base}/api/v1/nothing/here`, { headers: client })).status === 403, 15_000)
}, 120_000)

afterAll(async () => {
  await Promise.all([stop(gateway), stop(flows), stop(subscriber)])
  await Promise.all([nats?.stop(), db?.drop()])
})

function check(text: string): { status: number | null; output: string } {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10_000 })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('metrics of every process', () => {
  it('gateway: request histogram, errors by code, rate-limit hits, blocked requests, flow calls by outcome; promtool clean', async () => {
    const text = await (await fetch(`${base}/metrics`)).text()
    expect(check(text)).toEqual({ status: 0, output: '' })
    expect(value(text, 'flowgate_http_request_duration_seconds_count{method="POST",route="/api/v1/orders/quote",status="200"}')).toBe(1)
    expect(value(text, 'flowgate_http_errors_total{route="/api/v1/orders/quote",code="NOT_FOUND"}')).toBe(1)
    expect(value(text, 'flowgate_http_errors_total{route="/api/v1/healthcheck",code="RATE_LIMITED"}')).toBe(4)
    expect(value(text, 'flowgate_http_errors_total{route="unmatched",code="NOT_FOUND"}')).toBeGreaterThanOrEqual(1)
    expect(value(text, 'flowgate_rate_limit_hits_total')).toBe(4)
    expect(value(text, 'flowgate_blocked_requests_total')).toBeGreaterThanOrEqual(1)
    expect(value(text, 'flowgate_flow_calls_total{flow="orders.quote",outcome="replied"}')).toBe(2)
    // No label holds a client address, a raw URL or a query string.
    expect(text).not.toMatch(/203\.0\.113|127\.0\.0\.1|x=\d|nothing\/here/)
  })

  it('flow worker on FLOW_METRICS_PORT: flow and step histograms, errors by code, in flight, queue, refused; promtool clean', async () => {
    const text = await (await fetch(flowMetrics)).text()
    expect(check(text)).toEqual({ status: 0, output: '' })
    expect(value(text, 'flowgate_flow_duration_seconds_count{flow="orders.quote",outcome="ok"}')).toBe(1)
    // The invalid baskets were refused at the edge: only the unknown SKU failed in the worker.
    expect(value(text, 'flowgate_flow_duration_seconds_count{flow="orders.quote",outcome="error"}')).toBe(1)
    expect(value(text, 'flowgate_flow_errors_total{flow="orders.quote",code="NOT_FOUND"}')).toBe(1)
    expect(value(text, 'flowgate_flow_step_duration_seconds_count{flow="orders.quote",step="priceItems",outcome="ok"}')).toBe(1)
    expect(value(text, 'flowgate_flow_step_duration_seconds_count{flow="orders.quote",step="priceItems",outcome="error"}')).toBe(1)
    expect(value(text, 'flowgate_flow_runs_in_flight')).toBe(0)
    expect(value(text, 'flowgate_flow_runs_queued')).toBe(0)
    expect(value(text, 'flowgate_flow_runs_refused_total')).toBe(0)
    expect(value(text, 'flowgate_flow_concurrency_limit')).toBe(64)
    expect(text).toMatch(/^flowgate_flows_process_cpu_seconds_total /m)
    expect((await fetch(flowMetrics.replace('/metrics', '/other'))).status).toBe(404)
  })

  it('subscriber on SUBSCRIBER_METRICS_PORT: events by kind, blocks, alerts, consumer lag; promtool clean', async () => {
    await waitFor(async () => value(await (await fetch(subscriberMetrics)).text(), 'flowgate_subscriber_blocks_total') === 1, 10_000)
    const text = await (await fetch(subscriberMetrics)).text()
    expect(check(text)).toEqual({ status: 0, output: '' })
    expect(value(text, 'flowgate_subscriber_events_processed_total{kind="rate_limit.hit"}')).toBe(4)
    expect(value(text, 'flowgate_subscriber_events_processed_total{kind="request.completed"}')).toBeGreaterThanOrEqual(4)
    expect(value(text, 'flowgate_subscriber_events_processed_total{kind="circuit.opened"}')).toBe(0)
    expect(value(text, 'flowgate_subscriber_alerts_total{kind="latency_spike"}')).toBeGreaterThanOrEqual(0)
    expect(value(text, 'flowgate_subscriber_consumer_lag_known')).toBe(1)
    expect(value(text, 'flowgate_subscriber_consumer_lag')).toBeGreaterThanOrEqual(0)
  })

  it('a scrape while the worker stops is answered or refused, never left hanging or failed', { timeout: 30_000 }, async () => {
    const answers: string[] = []
    let stopped = false
    const scraping = (async () => {
      while (!stopped) {
        const ctl = AbortSignal.timeout(3000)
        try {
          const res = await fetch(flowMetrics, { signal: ctl })
          const text = await res.text()
          answers.push(res.status === 200 && check(text).status === 0 ? 'ok' : `bad ${res.status}`)
        } catch (err) {
          const cause = (err as { cause?: { code?: string } }).cause?.code
          answers.push(cause === 'ECONNREFUSED' || cause === 'ECONNRESET' || cause === 'UND_ERR_SOCKET' ? 'refused' : `error ${String(err)}`)
        }
      }
    })()
    await waitFor(() => answers.length >= 3)
    flows.child.kill('SIGTERM')
    expect(await flows.exit).toBe(0)
    await waitFor(() => answers.at(-1) === 'refused')
    stopped = true
    await scraping
    expect(answers.filter((a) => a !== 'ok' && a !== 'refused')).toEqual([])
    expect(answers).toContain('ok')
  })
})
