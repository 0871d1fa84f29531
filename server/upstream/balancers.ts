// Which target takes the next request. Pure: each balancer sees the targets and a predicate saying
// which are usable now (not ejected, not behind an open breaker, not tried already), and chooses.
// undici's BalancedPool has its own weighted round robin, but no way to skip a target for one
// request (a retry on another target, an open breaker), so each target gets a Pool and we choose.
import { PeakEwma } from './ewma.js'
import type { BalancerName } from './spec.js'

export interface Balanced {
  readonly weight: number
  /** Requests in flight. */
  active: number
  /** Smooth weighted round robin's running weight. */
  current: number
  readonly ewma: PeakEwma
}

export type Usable<T> = (target: T) => boolean

export interface Balancer {
  readonly name: BalancerName
  pick<T extends Balanced>(targets: readonly T[], usable: Usable<T>): T | undefined
}

export function createBalancer(name: BalancerName, deps: { random?: () => number; now?: () => number } = {}): Balancer {
  const random = deps.random ?? Math.random
  const now = deps.now ?? Date.now
  switch (name) {
    case 'round-robin':
      return roundRobin()
    case 'least-connections':
      return leastConnections()
    case 'weighted-round-robin':
      return smoothWeighted()
    case 'p2c-ewma':
      return p2cEwma(random, now)
  }
}

function roundRobin(): Balancer {
  let next = 0
  return {
    name: 'round-robin',
    pick(targets, usable) {
      const n = targets.length
      for (let i = 0; i < n; i++) {
        const t = targets[(next + i) % n]!
        if (usable(t)) {
          next = (next + i + 1) % n
          return t
        }
      }
      return undefined
    },
  }
}

/** Fewest requests in flight; ties go round robin so equal targets share the load. */
function leastConnections(): Balancer {
  let start = 0
  return {
    name: 'least-connections',
    pick(targets, usable) {
      const n = targets.length
      let best: (typeof targets)[number] | undefined
      for (let i = 0; i < n; i++) {
        const t = targets[(start + i) % n]!
        if (usable(t) && (best === undefined || t.active < best.active)) best = t
      }
      start = (start + 1) % Math.max(1, n)
      return best
    },
  }
}

/**
 * nginx's smooth weighted round robin: each pick adds every usable target's weight to its running
 * weight, takes the largest, and lowers the winner by the total. Weights 5:1:1 give a a b a c a a,
 * interleaved instead of five in a row.
 */
function smoothWeighted(): Balancer {
  return {
    name: 'weighted-round-robin',
    pick(targets, usable) {
      let total = 0
      let best: (typeof targets)[number] | undefined
      for (const t of targets) {
        if (!usable(t)) continue
        t.current += t.weight
        total += t.weight
        if (best === undefined || t.current > best.current) best = t
      }
      if (best !== undefined) best.current -= total
      return best
    },
  }
}

/**
 * Power of two choices over peak EWMA (Finagle, Envoy, linkerd): two distinct usable targets at
 * random, the one with the lower latency × (in flight + 1) wins. Cheap, and it steers away from a
 * slow instance without herding every gateway onto the same fast one.
 */
function p2cEwma(random: () => number, now: () => number): Balancer {
  return {
    name: 'p2c-ewma',
    pick(targets, usable) {
      const n = targets.length
      let a: (typeof targets)[number] | undefined
      let b: (typeof targets)[number] | undefined
      // Two random probes first (the usual case: every target usable), a scan only when they miss.
      const i = Math.floor(random() * n)
      const j = n > 1 ? (i + 1 + Math.floor(random() * (n - 1))) % n : i
      if (n > 0 && usable(targets[i]!)) a = targets[i]
      if (j !== i && usable(targets[j]!)) b = targets[j]
      if (a === undefined || b === undefined) {
        const pool = targets.filter(usable)
        if (pool.length === 0) return undefined
        if (pool.length === 1) return pool[0]
        const x = Math.floor(random() * pool.length)
        const y = (x + 1 + Math.floor(random() * (pool.length - 1))) % pool.length
        a = pool[x]!
        b = pool[y]!
      }
      const t = now()
      return b.ewma.cost(b.active, t) < a.ewma.cost(a.active, t) ? b : a
    },
  }
}
