// The nats-server configuration shipped in deploy/nats/ is exactly what the role list renders (it
// cannot drift from the permissions the code needs), and nats-server itself accepts it.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { BUS_ROLES, type BusRole } from '../../lib/bus.js'
import { renderServerConfig } from '../../cli/nats-config.js'
import { requireBinary } from '../harness/process.js'

const FILE = 'deploy/nats/nats-server.conf'

describe('deploy/nats/nats-server.conf', () => {
  const text = readFileSync(FILE, 'utf8')

  it('is the rendering of lib/bus.ts with its example keys', () => {
    const keys = [...text.matchAll(/^\s*nkey: (U[A-Z2-7]{55})$/gm)].map((m) => m[1]!)
    expect(keys).toHaveLength(BUS_ROLES.length)
    const byRole = Object.fromEntries(BUS_ROLES.map((r, i) => [r, keys[i]!])) as Record<BusRole, string>
    const rendered = renderServerConfig(byRole, { listen: '0.0.0.0:4222', storeDir: '/data/jetstream' })
    expect(text.slice(text.indexOf(rendered.split('\n')[0]!))).toBe(rendered)
  })

  it('passes nats-server -t', () => {
    const bin = requireBinary('nats-server', ['/usr/sbin/nats-server'], 'apt-get install nats-server')
    const r = spawnSync(bin, ['-c', FILE, '-t'], { encoding: 'utf8' })
    expect(r.stderr + r.stdout).toMatch(/configuration file .* is valid/)
    expect(r.status).toBe(0)
  })
})
