import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'

export interface Comparison { maxDiff: number, tolerance: number, agrees: boolean }

/**
 * Whether two servers' outputs for the same input agree. Honest peers differ only by float
 * rounding of different backends (≈1e-5 relative); the tolerance is a small fraction of the
 * reference's RMS, far above rounding and far below any tampering that changes the result.
 */
export function compareOutputs (candidate: Float32Array, reference: Float32Array, relTolerance = 0.02): Comparison {
  if (candidate.length !== reference.length) return { maxDiff: Infinity, tolerance: 0, agrees: false }
  let sq = 0
  let maxDiff = 0
  for (let i = 0; i < reference.length; i++) {
    sq += reference[i] * reference[i]
    const d = Math.abs(candidate[i] - reference[i])
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d
  }
  const tolerance = relTolerance * Math.sqrt(sq / Math.max(reference.length, 1)) + 1e-4
  return { maxDiff, tolerance, agrees: maxDiff <= tolerance }
}

export function digest (data: Float32Array): string {
  return bytesToHex(sha256(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)))
}

/** Local standing per peer, lowered by evidence; routing prefers peers in good standing. */
export class Standing {
  private readonly scores = new Map<string, number>()

  get (peer: string): number {
    return this.scores.get(peer) ?? 1
  }

  penalise (peer: string, factor = 0.5): void {
    this.scores.set(peer, this.get(peer) * factor)
  }

  all (): Record<string, number> {
    return Object.fromEntries(this.scores)
  }
}
