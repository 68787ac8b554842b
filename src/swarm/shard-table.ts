import type { ShardAnnounce } from './messages.ts'

export interface ShardEntry extends ShardAnnounce {
  peer: string
  expiresAt: number
}

/** Per model, which agent serves which blocks: built from verified, expiring shard announces. */
export class ShardTable {
  private readonly entries = new Map<string, ShardEntry>()

  apply (peer: string, body: ShardAnnounce, now = Date.now()): void {
    // One range per (agent, model): a newer announce replaces the agent's previous range.
    this.entries.set(`${peer}\n${body.model}`, { ...body, peer, expiresAt: now + body.ttl * 1000 })
  }

  removePeer (peer: string): boolean {
    let changed = false
    for (const [k, e] of this.entries) if (e.peer === peer) { this.entries.delete(k); changed = true }
    return changed
  }

  expire (now = Date.now()): boolean {
    let changed = false
    for (const [k, e] of this.entries) if (e.expiresAt <= now) { this.entries.delete(k); changed = true }
    return changed
  }

  forModel (model: string): ShardEntry[] {
    return [...this.entries.values()].filter(e => e.model === model)
  }

  models (): Array<{ model: string, name: string, nLayers: number }> {
    const seen = new Map<string, { model: string, name: string, nLayers: number }>()
    for (const e of this.entries.values()) if (!seen.has(e.model)) seen.set(e.model, { model: e.model, name: e.name, nLayers: e.nLayers })
    return [...seen.values()]
  }

  all (): ShardEntry[] {
    return [...this.entries.values()]
  }
}

/** How many servers cover each block of a model (the dashboard's coverage bar). */
export function coverage (entries: ShardEntry[], nLayers: number): number[] {
  const counts = new Array<number>(nLayers).fill(0)
  for (const e of entries) for (let b = e.start; b <= Math.min(e.end, nLayers - 1); b++) counts[b]++
  return counts
}

/** Blocks nobody serves, as inclusive ranges ("blocks 3-4 are missing"). */
export function missingRanges (entries: ShardEntry[], nLayers: number): Array<[number, number]> {
  const counts = coverage(entries, nLayers)
  const gaps: Array<[number, number]> = []
  for (let b = 0; b < nLayers; b++) {
    if (counts[b] > 0) continue
    if (gaps.length > 0 && gaps[gaps.length - 1][1] === b - 1) gaps[gaps.length - 1][1] = b
    else gaps.push([b, b])
  }
  return gaps
}

/** "block 4", "blocks 2-3, 7": how people read a list of block ranges. */
export function formatBlocks (ranges: Array<[number, number]>): string {
  const parts = ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`))
  return `block${parts.length === 1 && !parts[0].includes('-') ? '' : 's'} ${parts.join(', ')}`
}
