// The trace page in a real headless Chromium (Debian's `chromium`, driven by playwright-core) with
// JavaScript off: a real request's x-trace-id leads, through the sign-in form and the recent-trace
// list, to the page of that request, which shows its steps in order with their durations. A
// screenshot is kept in test-artifacts/ (not committed) for people to look at.
import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { AddressInfo } from 'node:net'
import { Type } from '@sinclair/typebox'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { defineFlow, type Flow } from '../../flows/define.js'
import { startNats, type NatsServer } from '../harness/nats.js'
import { requireBinary, waitFor } from '../harness/process.js'
import { captureLogs, startGateway, startWorker, testConfig, waitForRoute, type TestGateway, type TestWorker } from '../harness/stack.js'

const ARTIFACTS = resolve('test-artifacts')

const checkout = defineFlow({
  name: 'browser.checkout',
  input: Type.Object({}),
  output: Type.Object({ order: Type.String() }),
  http: { method: 'POST', path: '/browser/checkout' },
  auth: 'public',
  async run(_input, ctx) {
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))
    await ctx.step('validateCart', () => wait(5))
    await ctx.step('reserveStock', async (c) => {
      await c.step('lockRows', () => wait(20))
    })
    await ctx.step('chargeCard', () => wait(40))
    return { order: 'o-1' }
  },
}) as unknown as Flow

let nats: NatsServer
let worker: TestWorker
let gw: TestGateway
let browser: Browser
let base = ''

beforeAll(async () => {
  const executablePath = requireBinary('chromium', ['/usr/bin/chromium'], 'apt-get install chromium')
  nats = await startNats()
  const config = testConfig(nats.url, { eventsEnabled: false, rateLimitEnabled: false })
  const logs = captureLogs('silent')
  worker = await startWorker(config, [checkout], logs.log)
  gw = await startGateway(config, logs.log)
  await waitForRoute(gw.gateway, 'POST', '/api/v1/browser/checkout')
  await gw.gateway.app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(gw.gateway.app.server.address() as AddressInfo).port}`
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 30_000 })
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await gw?.stop()
  await worker?.stop()
  await nats?.stop()
})

describe('the trace page in Chromium, JavaScript off', () => {
  it('shows the steps of the request that produced it, in order, with their durations', { timeout: 60_000 }, async () => {
    const res = await fetch(`${base}/api/v1/browser/checkout`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(res.status).toBe(200)
    const traceId = res.headers.get('x-trace-id')!
    expect(traceId).toMatch(/^[0-9a-f]{32}$/)
    const token = createTokenService(testConfig(nats.url)).sign({ sub: 'admin-1', role: 'admin' }).token
    await waitFor(async () => (await fetch(`${base}/traces/${traceId}`, { headers: { authorization: `Bearer ${token}` } })).status === 200)

    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1280, height: 720 } })
    const scripts: string[] = []
    const cspViolations: string[] = []
    const page = await context.newPage()
    page.on('request', (r) => r.resourceType() === 'script' && scripts.push(r.url()))
    page.on('console', (m) => m.text().includes('Content Security Policy') && cspViolations.push(m.text()))
    try {
      // Not signed in: the trace's address shows the sign-in form, which brings the admin back to it.
      const first = await page.goto(`${base}/traces/${traceId}`)
      expect(first?.status()).toBe(401)
      await page.fill('textarea[name="token"]', token)
      await Promise.all([page.waitForURL(`${base}/traces/${traceId}`), page.click('button')])

      const rows = page.locator('table.waterfall tbody tr')
      expect(await rows.count()).toBe(6)
      expect(await rows.first().locator('td.name').innerText()).toBe('POST /api/v1/browser/checkout')
      expect(await rows.nth(1).locator('td.name').innerText()).toBe('flow browser.checkout')
      const run = Number((await rows.nth(1).locator('td.duration').innerText()).replace(' ms', ''))
      expect(run).toBeGreaterThanOrEqual(65)
      const steps = page.locator('tr.step')
      expect(await steps.locator('td.name').allInnerTexts()).toEqual(['validateCart', 'reserveStock', 'lockRows', 'chargeCard'])
      const durations = (await steps.locator('td.duration').allInnerTexts()).map((t) => Number(t.replace(' ms', '')))
      expect(durations[0]).toBeGreaterThanOrEqual(4)
      expect(durations[2]).toBeGreaterThanOrEqual(19)
      expect(durations[3]).toBeGreaterThanOrEqual(39)
      const offsets = (await steps.locator('td.offset').allInnerTexts()).map((t) => Number(t.replace(' ms', '')))
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b))
      expect(await steps.locator('td.outcome').allInnerTexts()).toEqual(['ok', 'ok', 'ok', 'ok'])
      // The nested step is indented under its parent; each bar is placed by the stylesheet, not by script.
      // (Runs in the page: the test's own types have no DOM, hence the narrow cast.)
      type Dom = { getComputedStyle(e: unknown): { paddingLeft: string } }
      const indent = await steps.locator('td.name').evaluateAll((cells) => cells.map((c) => parseFloat((globalThis as unknown as Dom).getComputedStyle(c).paddingLeft)))
      expect(indent[2]).toBeGreaterThan(indent[1]!)
      const bars = await steps.locator('.bar').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width))
      expect(bars[3]).toBeGreaterThan(bars[0]!)
      expect(await page.locator('dl').innerText()).toContain(worker.worker.service.info().id)

      mkdirSync(ARTIFACTS, { recursive: true })
      const shot = join(ARTIFACTS, 'trace-page.png')
      await page.screenshot({ path: shot, fullPage: true })
      expect(existsSync(shot)).toBe(true)

      // The recent-trace list links to the same page.
      await page.goto(`${base}/traces?flow=browser.checkout`)
      await Promise.all([page.waitForURL(`${base}/traces/${traceId}`), page.click(`a[href="/traces/${traceId}"]`)])
      expect(await page.locator('h1').innerText()).toBe(`Trace ${traceId}`)
      await page.screenshot({ path: join(ARTIFACTS, 'trace-list.png') })
      expect(scripts).toEqual([])
      expect(cspViolations).toEqual([])
    } finally {
      await context.close()
    }
  })
})
