import type { ShardEntry } from './shard-table.ts'

/** Served throughput per block (tokens/s summed over the servers covering it). */
export function blockThroughput (entries: ShardEntry[], nLayers: number): number[] {
  const t = new Array<number>(nLayers).fill(0)
  for (const e of entries) {
    const perBlock = 1000 / Math.max(e.msPerTokenLayer * (e.end - e.start + 1), 1e-3)
    for (let b = e.start; b <= Math.min(e.end, nLayers - 1); b++) t[b] += perBlock
  }
  return t
}

/**
 * Petals' block selection: among all windows of `span` blocks, host the one whose weakest block
 * has the least throughput (ties: least total), so new capacity goes where the swarm is thinnest.
 */
export function chooseRange (entries: ShardEntry[], nLayers: number, span: number): [number, number] {
  const n = Math.max(1, Math.min(span, nLayers))
  const t = blockThroughput(entries, nLayers)
  let best = 0
  let bestKey: [number, number] = [Infinity, Infinity]
  for (let start = 0; start + n <= nLayers; start++) {
    const window = t.slice(start, start + n)
    const key: [number, number] = [Math.min(...window), window.reduce((a, b) => a + b, 0)]
    if (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) {
      best = start
      bestKey = key
    }
  }
  return [best, best + n - 1]
}

/** The swarm's bottleneck: the throughput of its weakest block (0 while any block is missing). */
export function bottleneck (entries: ShardEntry[], nLayers: number): number {
  return Math.min(...blockThroughput(entries, nLayers))
}

/**
 * Whether an agent hosting `current` should move: only if taking itself out and placing itself
 * anew raises the swarm's bottleneck by more than `minGain` (moving costs a reload), as in
 * Petals' should_choose_other_blocks.
 */
export function shouldMove (entries: ShardEntry[], self: string, current: [number, number], nLayers: number, minGain = 1.2): [number, number] | undefined {
  const others = entries.filter(e => e.peer !== self)
  const mine = entries.find(e => e.peer === self)
  if (mine == null) return undefined
  const span = current[1] - current[0] + 1
  const candidate = chooseRange(others, nLayers, span)
  if (candidate[0] === current[0]) return undefined
  const withCurrent = bottleneck([...others, mine], nLayers)
  const withCandidate = bottleneck([...others, { ...mine, start: candidate[0], end: candidate[1] }], nLayers)
  if (withCurrent === 0 ? withCandidate > 0 : withCandidate > withCurrent * minGain) return candidate
  return undefined
}
