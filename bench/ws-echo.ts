// The WebSocket scenario of `npm run bench:proxy`: N clients, each making sequential echo round
// trips (a 64-byte text message out, its echo back) against a `ws` echo server, directly and through
// a Flowgate WebSocket route, in alternating rounds. Prints round trips per second, p50/p99 latency
// and the ratios to direct (medians of the per-round ratios, as for HTTP).
import WebSocket from 'ws'

const PAYLOAD = 'x'.repeat(64)

export interface EchoResult {
  rps: number
  p50: number
  p99: number
}

/** One round: `clients` sockets, each echoing as fast as its round trips allow for `durationSec`. */
export async function echoRound(url: string, clients: number, durationSec: number): Promise<EchoResult> {
  const sockets = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url, { perMessageDeflate: false })
          ws.once('open', () => resolve(ws))
          ws.once('error', reject)
        }),
    ),
  )
  const latencies: number[] = []
  const end = performance.now() + durationSec * 1000
  const loop = (ws: WebSocket) =>
    new Promise<void>((resolve) => {
      let sentAt = 0
      const send = () => {
        if (performance.now() >= end) return resolve()
        sentAt = performance.now()
        ws.send(PAYLOAD)
      }
      ws.on('message', () => {
        latencies.push(performance.now() - sentAt)
        send()
      })
      send()
    })
  const t0 = performance.now()
  await Promise.all(sockets.map(loop))
  const seconds = (performance.now() - t0) / 1000
  await Promise.all(sockets.map((ws) => new Promise<void>((resolve) => (ws.once('close', () => resolve()), ws.close(1000)))))
  latencies.sort((a, b) => a - b)
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))]! * 100) / 100
  return { rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99) }
}

export interface EchoScenario {
  name: string
  url: string
  /** The processes whose CPU time counts for it. */
  roles: string[]
}

/**
 * Rounds side by side over the scenarios (the first is direct); prints the table (round trips/s,
 * p50/p99, ratios to direct and to the second scenario, CPU µs per round trip).
 */
export async function runEchoScenarios(
  scenarios: EchoScenario[],
  cpuOf: (role: string) => Promise<number>,
  opts: { clients: number; rounds: number; roundSec: number },
): Promise<void> {
  for (const s of scenarios) await echoRound(s.url, opts.clients, 1) // warm-up: JIT on every side
  const rounds: Array<Array<EchoResult & { cpuUs: Record<string, number> }>> = []
  for (let i = 0; i < opts.rounds; i++) {
    const row: Array<EchoResult & { cpuUs: Record<string, number> }> = []
    for (const s of scenarios) {
      const before = await Promise.all(s.roles.map(cpuOf))
      const r = await echoRound(s.url, opts.clients, opts.roundSec)
      const after = await Promise.all(s.roles.map(cpuOf))
      const trips = r.rps * opts.roundSec
      row.push({ ...r, cpuUs: Object.fromEntries(s.roles.map((role, j) => [role, (after[j]! - before[j]!) / Math.max(1, trips)])) })
    }
    rounds.push(row)
    console.log(`  round ${i + 1}: ${scenarios.map((s, j) => `${s.name} ${row[j]!.rps.toFixed(0)}`).join(', ')} round trips/s`)
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const ratio = (a: number, b: number) => median(rounds.map((r) => r[a]!.rps / r[b]!.rps))
  console.log(`\n${'WebSocket echo'.padEnd(30)} ${'trips/s'.padStart(8)} ${'p50/p99 ms'.padStart(12)} ${'× direct'.padStart(9)} ${'× 2nd'.padStart(6)}  CPU µs/round trip`)
  scenarios.forEach((s, j) => {
    const rs = rounds.map((r) => r[j]!)
    const cpu = s.roles.map((role) => `${role} ${median(rs.map((r) => r.cpuUs[role]!)).toFixed(0)}`).join(', ')
    const p = `${median(rs.map((r) => r.p50))}/${median(rs.map((r) => r.p99))}`
    console.log(
      `${s.name.padEnd(30)} ${median(rs.map((r) => r.rps)).toFixed(0).padStart(8)} ${p.padStart(12)} ${ratio(j, 0).toFixed(2).padStart(9)} ${(j === 0 ? '' : ratio(j, 1).toFixed(2)).padStart(6)}  ${cpu}`,
    )
  })
  const last = scenarios.length - 1
  console.log(`per-round ratios of ${scenarios[last]!.name} to direct: ${rounds.map((r) => (r[last]!.rps / r[0]!.rps).toFixed(2)).join(' ')}`)
}
