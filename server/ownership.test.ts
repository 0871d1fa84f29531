import { describe, expect, it } from 'vitest'
import { pathKey, RouteOwnership, type Claim } from './ownership.js'
import type { FlowRoute } from './routes.js'

const claim = (service: string, flow: string, path: string, fingerprint = 'v1', id = `${service}-1`): Claim => ({
  route: { flow, subject: `api.v1.${flow}`, method: 'POST', path } as FlowRoute,
  owner: { service, id },
  fingerprint,
})

describe('route ownership', () => {
  it('keeps a path and a flow name with the first service that announced them', () => {
    const o = new RouteOwnership(3)
    expect(o.round([claim('workers', 'admin.login', '/api/v1/admin/login')]).changed).toBe(true)
    const r = o.round([claim('workers', 'admin.login', '/api/v1/admin/login'), claim('rogue', 'rogue.steal', '/api/v1/admin/login'), claim('rogue', 'admin.login', '/api/v1/rogue')])
    expect(r.changed).toBe(false)
    expect(r.conflicts.map((c) => [c.kind, c.claim, c.kept.service, c.refused.service])).toEqual([
      ['path', 'POST /api/v1/admin/login', 'workers', 'rogue'],
      ['flow', 'api.v1.admin.login', 'workers', 'rogue'],
    ])
    expect(o.routes().map((x) => x.flow)).toEqual(['admin.login'])
  })

  it('lets every instance of the owning service share what it owns, and follows its changes', () => {
    const o = new RouteOwnership(3)
    o.round([claim('workers', 'orders.get', '/api/v1/orders/:id')])
    const r = o.round([claim('workers', 'orders.get', '/api/v1/orders/:orderId', 'v2', 'workers-2'), claim('workers', 'orders.get', '/api/v1/orders/:id', 'v1', 'workers-1')])
    expect(r.conflicts).toEqual([])
    expect(r.changed).toBe(true)
    expect(o.routes()[0]!.path).toBe('/api/v1/orders/:orderId')
  })

  it('treats paths that differ only in parameter names as one route', () => {
    expect(pathKey({ method: 'GET', path: '/a/:id/b' })).toBe(pathKey({ method: 'GET', path: '/a/:key/b' }))
    const o = new RouteOwnership(3)
    o.round([claim('workers', 'a.get', '/a/:id')])
    expect(o.round([claim('workers', 'a.get', '/a/:id'), claim('other', 'b.get', '/a/:key')]).conflicts[0]?.kind).toBe('path')
  })

  it('frees what a service stopped serving after the missed rounds, for the next one to take', () => {
    const o = new RouteOwnership(2)
    o.round([claim('old', 'x.y', '/x')])
    expect(o.round([claim('new', 'x.y', '/x')]).conflicts).toHaveLength(1)
    const gone = o.round([claim('new', 'x.y', '/x')])
    expect(gone.removed.map((r) => r.flow)).toEqual(['x.y'])
    const taken = o.round([claim('new', 'x.y', '/x')])
    expect(taken.conflicts).toEqual([])
    expect(taken.changed).toBe(true)
  })

  it('takes a partial round (instances asked by id) as additions: nothing it did not ask about is missed', () => {
    const o = new RouteOwnership(2)
    o.round([claim('workers', 'a.get', '/a'), claim('workers', 'b.get', '/b')])
    for (let i = 0; i < 5; i++) expect(o.round([claim('workers', 'c.get', '/c', 'v1', 'workers-2')], true).removed).toEqual([])
    expect(o.routes().map((r) => r.flow)).toEqual(['a.get', 'b.get', 'c.get'])
    // still refuses a claim on what another service holds
    expect(o.round([claim('rogue', 'a.get', '/elsewhere')], true).conflicts.map((c) => c.kind)).toEqual(['flow'])
    // a full round counts the misses again
    o.round([claim('workers', 'a.get', '/a')])
    expect(o.round([claim('workers', 'a.get', '/a')]).removed.map((r) => r.flow)).toEqual(['b.get', 'c.get'])
  })
})
