// How a process gets onto the bus: TLS, a .creds file in a decentralised (operator/JWT) setup, an NKey
// seed; credentials the server refuses (wrong, expired, unreadable) end the start with a clear line
// and a non-zero exit; and a server restarted with the same configuration gets everything back.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt'
import { nkeys } from 'nats'
import { Registry } from 'prom-client'
import { afterAll, describe, expect, it } from 'vitest'
import { createTokenService } from '../../lib/auth.js'
import { connectNats, NatsConnectError } from '../../lib/nats.js'
import { disabledTracing } from '../../lib/telemetry.js'
import { createFlowWorker } from '../../flows/worker.js'
import { quote } from '../../flows/orders/quote.js'
import type { Flow } from '../../flows/define.js'
import { buildGateway } from '../../server/gateway.js'
import { captureLogs, testConfig, waitForRoute } from '../harness/stack.js'
import { startLockedNats, type LockedNatsServer } from '../harness/nats.js'
import { freePort, requireBinary, runCli, startProcess, tempDir, portOpen } from '../harness/process.js'
import { waitFor } from '../events/edge-stack.js'

const sink = captureLogs('silent')
const stops: Array<() => Promise<unknown>> = []
afterAll(async () => {
  for (const stop of stops.reverse()) await stop()
})

async function locked(opts: { tls?: boolean } = {}): Promise<LockedNatsServer> {
  const s = await startLockedNats(opts)
  stops.push(() => s.stop())
  return s
}

const ORDER = { items: [{ sku: 'kettle', quantity: 1 }] }

describe('TLS', () => {
  it('connects over tls:// with the CA from NATS_TLS_CA, and refuses a server it cannot verify', async () => {
    const nats = await locked({ tls: true })
    const nc = await connectNats(testConfig(nats.url, nats.settings('cli')), sink.log, 'cli')
    expect(nc.info?.tls_required).toBe(true)
    await nc.close()
    const { natsTlsCa: _ca, ...withoutCa } = nats.settings('cli')
    await expect(connectNats(testConfig(nats.url, withoutCa), sink.log, 'cli')).rejects.toBeInstanceOf(Error)
  })
})

describe('decentralised auth (.creds)', () => {
  it('connects with NATS_CREDS; an expired user JWT ends the start with a clear message and exit 1', async () => {
    const dir = tempDir('operator')
    const operator = createOperator()
    const account = createAccount()
    const opJwt = await encodeOperator('FLOWGATE-TEST', operator)
    // The library's defaults allow no connections and no subscriptions: an account and users without limits.
    const accJwt = await encodeAccount('FLOWGATE', account, { limits: { conn: -1, subs: -1, data: -1, payload: -1, leaf: -1, imports: -1, exports: -1, wildcards: true } }, { signer: operator })
    const creds = async (name: string, exp?: number) => {
      const user = createUser()
      const jwt = await encodeUser(name, user, account, { subs: -1, data: -1, payload: -1 }, exp === undefined ? {} : { exp })
      const file = join(dir, `${name}.creds`)
      writeFileSync(file, fmtCreds(jwt, user))
      return file
    }
    const port = await freePort()
    const conf = join(dir, 'nats.conf')
    writeFileSync(conf, `listen: 127.0.0.1:${port}\noperator: ${opJwt}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: ${accJwt} }\n`)
    const bin = requireBinary('nats-server', ['/usr/sbin/nats-server'], 'apt-get install nats-server')
    const server = await startProcess({ name: 'nats-server', bin, args: ['-c', conf], dir, ready: () => portOpen(port) })
    stops.push(() => server.stop())
    const url = `nats://127.0.0.1:${port}`

    const nc = await connectNats(testConfig(url, { natsCreds: await creds('good') }), sink.log, 'gateway')
    expect(nc.isClosed()).toBe(false)
    await nc.close()

    const expired = await creds('expired', Math.floor(Date.now() / 1000) - 60)
    await expect(connectNats(testConfig(url, { natsCreds: expired }), sink.log, 'gateway')).rejects.toBeInstanceOf(NatsConnectError)
    const p = runCli(['gateway'], { NATS_URL: url, NATS_CREDS: expired, PORT: String(await freePort()), HOST: '127.0.0.1', NODE_ENV: 'test' })
    expect(await p.exit).toBe(1)
    expect(p.output()).toMatch(/refused the credentials of gateway/)
    expect(p.output()).not.toMatch(/at .*\.js:\d+/)
  })
})

describe('credentials at start', () => {
  it('a wrong NKey, an unreadable seed file, or none at all: one clear line each, exit 1', { timeout: 45_000 }, async () => {
    const nats = await locked()
    const dir = tempDir('seeds')
    mkdirSync(dir, { recursive: true })
    const stranger = join(dir, 'stranger.nk')
    writeFileSync(stranger, new TextDecoder().decode(nkeys.createUser().getSeed()))
    const env = { NATS_URL: nats.url, HOST: '127.0.0.1', NODE_ENV: 'test', LOG_LEVEL: 'warn' }
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ NATS_NKEY_SEED: stranger }, /refused the credentials of flows/],
      [{ NATS_NKEY_SEED: join(dir, 'missing.nk') }, /NATS_NKEY_SEED: cannot read .*missing\.nk \(ENOENT\)/],
      [{}, /refused the credentials of flows/],
    ]
    const runs = cases.map(([extra]) => runCli(['flows'], { ...env, ...extra, DATA_DIR: tempDir('flows') }))
    for (const [i, p] of runs.entries()) {
      expect(await p.exit).toBe(1)
      expect(p.output()).toMatch(cases[i]![1])
      expect(p.output()).not.toMatch(/at .*\.js:\d+/)
    }
  })
})

describe('restart', () => {
  it('NATS restarted with the same configuration: gateway and worker reconnect and serve again', async () => {
    const nats = await locked()
    const wnc = await connectNats(testConfig(nats.url, nats.settings('flows')), sink.log, 'flows')
    const worker = await createFlowWorker(testConfig(nats.url), { nats: wnc, log: sink.log, tokens: createTokenService(testConfig(nats.url)), tracing: disabledTracing, flowDeps: { nats: wnc, probes: {} } }, [quote as unknown as Flow])
    const config = testConfig(nats.url, nats.settings('gateway'))
    const gnc = await connectNats(config, sink.log, 'gateway')
    const gateway = await buildGateway(config, { nats: gnc, log: sink.log, tokens: createTokenService(config), tracing: disabledTracing, registry: new Registry() })
    stops.push(async () => {
      await gateway.close()
      await worker.stop(500)
      await gnc.close()
      await wnc.close()
    })
    await waitForRoute(gateway, 'POST', '/api/v1/orders/quote')
    const call = () => gateway.app.inject({ method: 'POST', url: '/api/v1/orders/quote', payload: ORDER })
    expect((await call()).statusCode).toBe(200)
    await nats.pause()
    expect((await call()).json()).toMatchObject({ status: 503, errorCode: 'SERVICE_UNAVAILABLE' })
    await nats.restart()
    await waitFor('served again', async () => (await call()).statusCode, (s) => s === 200, 10_000, 100)
    expect(nats.log().split('\n').filter((l) => /Violation/i.test(l))).toEqual([])
  })
})
