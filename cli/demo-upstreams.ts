// "Try it at once": in development, `flowgate start` without SERVICES_FILE runs two small product
// services on free loopback ports and a services file routing /api/products to both, so a proxy
// route answers (and /lb-stats shows two targets) before anything of one's own is configured.
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import type { Running } from '../lib/shutdown.js'

const PRODUCTS = [
  { id: 1, name: 'Coffee beans', price: 14.5 },
  { id: 2, name: 'Grinder', price: 89 },
  { id: 3, name: 'Kettle', price: 39.9 },
]

function productService(name: string): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-served-by': name })
      res.end(JSON.stringify(body))
    }
    if (path === '/health') return send(200, { status: 'ok' })
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: 'read-only demo' })
    if (path === '/' || path === '') return send(200, { servedBy: name, products: PRODUCTS })
    const product = PRODUCTS.find((p) => `/${p.id}` === path)
    return product ? send(200, { servedBy: name, product }) : send(404, { servedBy: name, error: 'no such product' })
  })
}

/** Starts the two demo services and writes their services file under `dataDir`; returns its path. */
export async function startDemoUpstreams(dataDir: string): Promise<Running & { servicesFile: string }> {
  const servers = [productService('demo-products-1'), productService('demo-products-2')]
  const ports: number[] = []
  for (const s of servers) {
    await new Promise<void>((done) => s.listen(0, '127.0.0.1', done))
    ports.push((s.address() as AddressInfo).port)
  }
  const dir = resolve(dataDir)
  mkdirSync(dir, { recursive: true })
  const servicesFile = join(dir, 'demo-services.json')
  writeFileSync(
    servicesFile,
    JSON.stringify(
      {
        upstreams: {
          products: {
            balancer: 'round-robin',
            targets: ports.map((p) => ({ url: `http://127.0.0.1:${p}` })),
            healthCheck: { path: '/health', intervalMs: 5000 },
          },
        },
        routes: [{ path: '/api/products/*', upstream: 'products', stripPrefix: true, auth: 'public', methods: ['GET', 'HEAD'] }],
      },
      null,
      2,
    ),
  )
  return {
    servicesFile,
    describe: `demo upstreams: products on 127.0.0.1:${ports.join(' and 127.0.0.1:')} (${servicesFile})`,
    async close() {
      await Promise.all(servers.map((s) => new Promise<void>((done) => s.close(() => done()))))
      for (const s of servers) s.closeAllConnections()
      return true
    },
  }
}
