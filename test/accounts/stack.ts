// A flow worker hosting the account flows over real NATS and a real database, for one test file.
// Calls go over the bus exactly as the gateway sends them (JSON body, Authorization header).
import { connect, headers, type NatsConnection } from 'nats'
import type { Redis } from 'ioredis'
import { openDatabase, type DatabaseHandle } from '../../db/client.js'
import { seedDatabase } from '../../db/seed.js'
import { createTokenService, type TokenService } from '../../lib/auth.js'
import { parseConfig, type Config } from '../../lib/config.js'
import { createLogger } from '../../lib/logger.js'
import { createPasswordHasher, type PasswordHasher } from '../../lib/passwords.js'
import { subjects } from '../../lib/subjects.js'
import { disabledTracing } from '../../lib/telemetry.js'
import type { FlowDeps } from '../../flows/context.js'
import { flows } from '../../flows/registry.js'
import { createFlowWorker, type FlowWorker } from '../../flows/worker.js'
import { startNats, type NatsServer } from '../harness/nats.js'

export const ROOT_EMAIL = 'root@example.com'
export const ROOT_PASSWORD = 'root-password-123'
export const CLIENT_ID = 'test-client'
export const CLIENT_SECRET = 'test-client-secret-0123456789'

export interface Envelope {
  success: boolean
  status: number
  data?: unknown
  errorCode?: string
  message?: string
  detailed?: Array<{ field: string; message: string }>
  traceId: string
}

export interface AccountsStack {
  config: Config
  nats: NatsServer
  /** The test's own NATS connection (the "client on the bus"). */
  client: NatsConnection
  database: DatabaseHandle
  tokens: TokenService
  passwords: PasswordHasher & { dummyCalls: number }
  worker: FlowWorker
  /** One request on api.v1.<flow> with an optional bearer token (or a raw Authorization value). */
  call(flow: string, input: unknown, auth?: { token?: string; header?: string; extraHeaders?: Record<string, string> }): Promise<Envelope>
  login(flow: 'admin.login' | 'customer.login', email: string, password: string): Promise<string>
  stop(): Promise<void>
}

/** Cheap scrypt for tests (the format and code path are the same; only the cost differs). */
export function testHasher(): PasswordHasher & { dummyCalls: number } {
  const inner = createPasswordHasher({ N: 1024, r: 8, p: 1 })
  const hasher = {
    dummyCalls: 0,
    hash: inner.hash,
    verify: inner.verify,
    verifyDummy: (password: string) => {
      hasher.dummyCalls++
      return inner.verifyDummy(password)
    },
  }
  return hasher
}

export async function startAccountsStack(opts: {
  databaseUrl?: string
  dataDir?: string
  cache?: Redis
  config?: Record<string, unknown>
  seed?: boolean
}): Promise<AccountsStack> {
  const nats = await startNats()
  const config = parseConfig({
    nodeEnv: 'test',
    natsUrl: nats.url,
    logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
    jwtSecret: 'test-secret-that-is-long-enough-0123456789',
    databaseUrl: opts.databaseUrl,
    dataDir: opts.dataDir ?? '.flowgate-test',
    dbConnectTimeoutMs: 1000,
    adminEmail: ROOT_EMAIL,
    adminPassword: ROOT_PASSWORD,
    seedClientId: CLIENT_ID,
    seedClientSecret: CLIENT_SECRET,
    ...opts.config,
  })
  const log = createLogger(config)
  const database = await openDatabase(config, log)
  await database.migrate()
  const passwords = testHasher()
  if (opts.seed !== false) await seedDatabase(database.db, config, passwords, () => undefined)
  const tokens = createTokenService(config)
  const workerNc = await connect({ servers: nats.url, name: 'test-worker' })
  const client = await connect({ servers: nats.url, name: 'test-client' })
  const probes: FlowDeps['probes'] = { database: () => database.probe() }
  if (opts.cache) probes.redis = () => opts.cache!.ping()
  const flowDeps: FlowDeps = { nats: workerNc, probes, db: database.db, tokens, passwords, cache: opts.cache }
  const worker = await createFlowWorker(config, { nats: workerNc, log, tokens, tracing: disabledTracing, flowDeps }, flows)
  // The endpoints' subscriptions reach the server before the first request.
  await workerNc.flush()

  const call: AccountsStack['call'] = async (flow, input, auth = {}) => {
    const h = headers()
    const authorization = auth.header ?? (auth.token ? `Bearer ${auth.token}` : undefined)
    if (authorization !== undefined) h.set('Authorization', authorization)
    for (const [k, v] of Object.entries(auth.extraHeaders ?? {})) h.set(k, v)
    const body = typeof input === 'string' ? input : JSON.stringify(input)
    const reply = await client.request(subjects.flow(flow), body, { headers: h, timeout: 10_000 })
    return JSON.parse(reply.string()) as Envelope
  }
  return {
    config,
    nats,
    client,
    database,
    tokens,
    passwords,
    worker,
    call,
    async login(flow, email, password) {
      const r = await call(flow, { email, password })
      if (!r.success) throw new Error(`${flow} failed: ${JSON.stringify(r)}`)
      return (r.data as { token: string }).token
    },
    async stop() {
      await worker.stop(1000)
      await client.close()
      await workerNc.close()
      await database.close()
      await nats.stop()
    },
  }
}
