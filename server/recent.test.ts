import { describe, expect, it } from 'vitest'
import { createRecentRequests, type RecentRequest } from './recent.js'

const entry = (n: number, over: Partial<RecentRequest> = {}): RecentRequest => ({
  startedAt: n,
  method: 'GET',
  route: '/api/v1/x',
  status: 200,
  durationMs: n,
  client: '198.51.100.1',
  traceId: n.toString(16).padStart(32, '0'),
  requestId: `r${n}`,
  ...over,
})

describe('recent requests', () => {
  it('keeps the last N, newest first, overwriting the oldest', () => {
    const recent = createRecentRequests(3)
    for (let n = 1; n <= 5; n++) recent.record(entry(n))
    expect(recent.list().map((e) => e.startedAt)).toEqual([5, 4, 3])
    expect(recent.list({ limit: 2 }).map((e) => e.startedAt)).toEqual([5, 4])
  })

  it('filters by flow, route, status or status class, and minimum duration', () => {
    const recent = createRecentRequests(10)
    recent.record(entry(1, { flow: 'orders.quote', status: 200 }))
    recent.record(entry(2, { flow: 'orders.quote', status: 404 }))
    recent.record(entry(30, { route: '/api/products', status: 503, upstream: 'products' }))
    expect(recent.list({ flow: 'orders.quote' }).map((e) => e.startedAt)).toEqual([2, 1])
    expect(recent.list({ status: 4 }).map((e) => e.startedAt)).toEqual([2])
    expect(recent.list({ status: 503 }).map((e) => e.startedAt)).toEqual([30])
    expect(recent.list({ minDurationMs: 2 }).map((e) => e.startedAt)).toEqual([30, 2])
    expect(recent.list({ route: '/api/products' })).toHaveLength(1)
  })

  it('holds nothing with a capacity of 0', () => {
    const recent = createRecentRequests(0)
    recent.record(entry(1))
    expect(recent.list()).toEqual([])
  })
})
