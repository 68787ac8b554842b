import { exactQuantile } from '../stats.ts'

/**
 * Round-trip times per peer for routing. One ping that lands in a GC pause or on a busy CPU can
 * be ten times the usual; routing on the latest sample alone would move a chain for that. The
 * median of the last few samples ignores single outliers yet follows a link that really changed.
 */
export class RttSamples {
  private readonly samples = new Map<string, number[]>()

  constructor (private readonly keep = 5) {}

  add (peer: string, ms: number): void {
    const s = this.samples.get(peer) ?? []
    s.push(ms)
    if (s.length > this.keep) s.shift()
    this.samples.set(peer, s)
  }

  /** The median in ms, rounded to 0.1 ms; undefined before the first sample. */
  get (peer: string): number | undefined {
    const s = this.samples.get(peer)
    if (s == null || s.length === 0) return undefined
    return Math.round(exactQuantile(s, 0.5) * 10) / 10
  }

  delete (peer: string): void {
    this.samples.delete(peer)
  }
}
