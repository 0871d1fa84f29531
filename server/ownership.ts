// Route ownership: a flow name and an HTTP method+path belong to the first service that announced
// them, for as long as it keeps serving them. Any service on the bus can announce endpoints, so a
// later one claiming a path or a flow name another service serves is refused and reported (DESIGN.md,
// "The bus is untrusted"); several instances of one service share what it owns. Pure: no I/O, no clock.
import type { FlowRoute } from './routes.js'

export interface Owner {
  /** The micro-service name (every instance of a service shares it). */
  service: string
  /** The instance that announced it. */
  id: string
}

export interface Claim {
  route: FlowRoute
  owner: Owner
  /** What the endpoint published; a change re-reads the route. */
  fingerprint: string
}

export interface Conflict {
  /** What was claimed twice: a flow name (its subject) or a method and path. */
  kind: 'flow' | 'path'
  claim: string
  kept: Owner & { flow: string }
  refused: Owner & { flow: string }
}

export interface RoundResult {
  changed: boolean
  /** Conflicts seen in this round (a refused claimer that keeps announcing shows in every round). */
  conflicts: Conflict[]
  /** Flows whose service stopped announcing them for `missedRounds` rounds. */
  removed: FlowRoute[]
}

interface Held extends Claim {
  missed: number
}

/** `GET /a/:id` and `GET /a/:key` are one route to the router: parameters compare by position only. */
export const pathKey = (route: Pick<FlowRoute, 'method' | 'path'>) => `${route.method} ${route.path.replace(/:[^/]+/g, ':')}`

export class RouteOwnership {
  /** By subject, in the order they were first accepted (the route table keeps that order). */
  private readonly held = new Map<string, Held>()

  constructor(private readonly missedRounds: number) {}

  routes(): FlowRoute[] {
    return [...this.held.values()].map((h) => h.route)
  }

  get size(): number {
    return this.held.size
  }

  /**
   * Applies one discovery round: the claims seen, in the order they arrived. A partial round (the
   * answer of a few instances asked by id) adds and updates what they claim but counts no route as
   * missed: the services it did not ask were not absent.
   */
  round(claims: readonly Claim[], partial = false): RoundResult {
    const conflicts: Conflict[] = []
    let changed = false
    const present = new Set<string>()
    const paths = new Map<string, Held>()
    for (const h of this.held.values()) paths.set(pathKey(h.route), h)
    const refuse = (kind: Conflict['kind'], claim: string, kept: Claim, c: Claim) =>
      conflicts.push({ kind, claim, kept: { ...kept.owner, flow: kept.route.flow }, refused: { ...c.owner, flow: c.route.flow } })

    for (const c of claims) {
      const subject = c.route.subject
      const mine = this.held.get(subject)
      if (mine !== undefined && mine.owner.service !== c.owner.service) {
        refuse('flow', subject, mine, c)
        continue
      }
      const key = pathKey(c.route)
      const pathHolder = paths.get(key)
      if (pathHolder !== undefined && pathHolder.route.subject !== subject) {
        refuse('path', key, pathHolder, c)
        continue
      }
      if (present.has(subject)) continue // another instance of the same service, same round
      present.add(subject)
      if (mine === undefined) {
        const entry: Held = { ...c, missed: 0 }
        this.held.set(subject, entry)
        paths.set(key, entry)
        changed = true
      } else {
        mine.missed = 0
        if (mine.fingerprint !== c.fingerprint) {
          paths.delete(pathKey(mine.route))
          Object.assign(mine, { route: c.route, fingerprint: c.fingerprint, owner: c.owner })
          paths.set(key, mine)
          changed = true
        }
      }
    }

    const removed: FlowRoute[] = []
    if (partial) return { changed, conflicts, removed }
    for (const [subject, h] of this.held) {
      if (present.has(subject)) continue
      if (++h.missed >= this.missedRounds) {
        this.held.delete(subject)
        removed.push(h.route)
        changed = true
      }
    }
    return { changed, conflicts, removed }
  }
}
