import type { ShardEntry } from './shard-table.ts'

export interface Hop { peer: string, start: number, end: number, estimateMs: number }

export interface RouteOptions {
  /** Our measured round-trip time to each peer, ms; unknown peers are assumed slow. */
  rttMs: (peer: string) => number | undefined
  /** Peers to avoid (recent failures, failed spot checks). */
  banned?: (peer: string) => boolean
  /** Standing in 0..1 from spot checks and ratings; a low standing makes a peer look slower. */
  standing?: (peer: string) => number
  /** Start position (the first block still needed), for routing a replacement for part of a chain. */
  from?: number
  /** End position (exclusive), defaults to the model's block count. */
  to?: number
}

const UNKNOWN_RTT_MS = 100

/** Estimated time for one decode step through a hop: network round trip plus compute. */
export function hopCost (e: ShardEntry, rtt: number | undefined, standing = 1): number {
  const compute = e.msPerTokenLayer * (e.end - e.start + 1) * (1 + e.load)
  return ((rtt ?? UNKNOWN_RTT_MS) + compute) / Math.max(standing, 0.05)
}

/**
 * The chain of servers with the lowest estimated time per token: Dijkstra over block positions
 * 0..N, where a server hosting blocks s..e is an edge from position s to e+1. The client talks
 * to every hop itself (as Petals' client does), so each hop costs the client's RTT to it.
 * Returns undefined when the blocks cannot be covered.
 */
export function findRoute (entries: ShardEntry[], nLayers: number, opts: RouteOptions): Hop[] | undefined {
  const from = opts.from ?? 0
  const to = opts.to ?? nLayers
  const usable = entries.filter(e => opts.banned?.(e.peer) !== true)
  const dist = new Array<number>(to + 1).fill(Infinity)
  const via = new Array<{ prev: number, hop: Hop } | undefined>(to + 1)
  const done = new Array<boolean>(to + 1).fill(false)
  dist[from] = 0
  for (;;) {
    let pos = -1
    for (let p = from; p <= to; p++) if (!done[p] && dist[p] < Infinity && (pos < 0 || dist[p] < dist[pos])) pos = p
    if (pos < 0 || pos === to) break
    done[pos] = true
    for (const e of usable) {
      if (e.start !== pos || e.end + 1 > to) continue
      const cost = hopCost(e, opts.rttMs(e.peer), opts.standing?.(e.peer))
      const next = e.end + 1
      if (dist[pos] + cost < dist[next]) {
        dist[next] = dist[pos] + cost
        via[next] = { prev: pos, hop: { peer: e.peer, start: e.start, end: e.end, estimateMs: cost } }
      }
    }
  }
  if (dist[to] === Infinity) return undefined
  const hops: Hop[] = []
  for (let p = to; p !== from;) {
    const step = via[p]!
    hops.unshift(step.hop)
    p = step.prev
  }
  return hops
}

/** Temporary bans with exponential backoff, so a flaky peer is retried later, not forever avoided. */
export class BanList {
  private readonly bans = new Map<string, { until: number, strikes: number }>()

  constructor (private readonly baseMs = 5_000, private readonly maxMs = 5 * 60_000) {}

  ban (peer: string, now = Date.now()): number {
    const strikes = (this.bans.get(peer)?.strikes ?? 0) + 1
    const ms = Math.min(this.baseMs * 2 ** (strikes - 1), this.maxMs)
    this.bans.set(peer, { until: now + ms, strikes })
    return ms
  }

  isBanned (peer: string, now = Date.now()): boolean {
    const b = this.bans.get(peer)
    return b != null && b.until > now
  }

  /** How long until the first of `peers` may be tried again (0 when one is not banned). */
  untilFirstExpiry (peers: Iterable<string>, now = Date.now()): number {
    let soonest = Infinity
    for (const p of peers) soonest = Math.min(soonest, Math.max(0, (this.bans.get(p)?.until ?? 0) - now))
    return soonest === Infinity ? 0 : soonest
  }

  /** A success forgives past strikes. */
  clear (peer: string): void {
    this.bans.delete(peer)
  }
}
