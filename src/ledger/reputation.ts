// Reputation from signed ratings and spot-check evidence, aggregated with EigenTrust
// (Kamvar et al. 2003): trust flows only along ratings, starting from pre-trusted seed peers,
// so a ring of fresh identities praising each other receives only what honest peers give it.
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'

/** After a task or session: score in [-1, 1] from rater about ratee; ref names the task or session. */
export interface Rating {
  rater: string
  ratee: string
  score: number
  ref: string
  ts: number
  sig: string
}

/** A spot-check mismatch in distributed inference: accused's output differed from a second peer's. */
export interface SpotCheckEvidence {
  checker: string
  accused: string
  session: string
  step: number
  expected: string
  got: string
  ts: number
  sig: string
}

/** One mismatch outweighs this many good ratings: cheating must not pay off between checks. */
const EVIDENCE_WEIGHT = 5

const ratingBytes = (r: Omit<Rating, 'sig'>) => utf8ToBytes('clawnet-rating-v1\n' + JSON.stringify([r.rater, r.ratee, r.score, r.ref, r.ts]))
const evidenceBytes = (e: Omit<SpotCheckEvidence, 'sig'>) =>
  utf8ToBytes('clawnet-spotcheck-v1\n' + JSON.stringify([e.checker, e.accused, e.session, e.step, e.expected, e.got, e.ts]))

export async function signRating(r: Omit<Rating, 'sig'>, key: PrivateKey): Promise<Rating> {
  return { ...r, sig: bytesToHex(await key.sign(ratingBytes(r))) }
}

export async function signEvidence(e: Omit<SpotCheckEvidence, 'sig'>, key: PrivateKey): Promise<SpotCheckEvidence> {
  return { ...e, sig: bytesToHex(await key.sign(evidenceBytes(e))) }
}

async function verifiedBy(signer: string, bytes: () => Uint8Array, sig: string): Promise<boolean> {
  try {
    const key = peerIdFromString(signer).publicKey
    return key != null && (await key.verify(bytes(), hexToBytes(sig)))
  } catch {
    return false
  }
}

export const verifyRating = (r: Rating) =>
  typeof r.score === 'number' && r.score >= -1 && r.score <= 1 && r.rater !== r.ratee ? verifiedBy(r.rater, () => ratingBytes(r), r.sig) : Promise.resolve(false)

export const verifyEvidence = (e: SpotCheckEvidence) =>
  e.checker !== e.accused && e.expected !== e.got ? verifiedBy(e.checker, () => evidenceBytes(e), e.sig) : Promise.resolve(false)

export interface ReputationOptions {
  /** Weight of the pre-trusted distribution in every step; EigenTrust's a. */
  alpha?: number
  iterations?: number
}

export class Reputation {
  /** local[i][j]: the sum of i's opinions about j (latest rating per ref counts). */
  private readonly opinions = new Map<string, Map<string, Map<string, number>>>()
  private readonly alpha: number
  private readonly iterations: number

  constructor(readonly seeds: string[], opts: ReputationOptions = {}) {
    if (seeds.length === 0) throw new Error('EigenTrust needs at least one pre-trusted peer')
    this.alpha = opts.alpha ?? 0.15
    this.iterations = opts.iterations ?? 50
  }

  async addRating(r: Rating): Promise<boolean> {
    if (!(await verifyRating(r))) return false
    this.opine(r.rater, r.ratee, `r:${r.ref}`, r.score)
    return true
  }

  async addEvidence(e: SpotCheckEvidence): Promise<boolean> {
    if (!(await verifyEvidence(e))) return false
    this.opine(e.checker, e.accused, `e:${e.session}:${e.step}`, -EVIDENCE_WEIGHT)
    return true
  }

  private opine(from: string, to: string, key: string, value: number): void {
    let row = this.opinions.get(from)
    if (row == null) this.opinions.set(from, (row = new Map()))
    let cell = row.get(to)
    if (cell == null) row.set(to, (cell = new Map()))
    cell.set(key, value)
  }

  /** Global trust per peer; sums to 1 over all peers seen. */
  scores(): Map<string, number> {
    const peers = new Set<string>(this.seeds)
    for (const [i, row] of this.opinions) {
      peers.add(i)
      for (const j of row.keys()) peers.add(j)
    }
    const p = new Map([...peers].map(x => [x, this.seeds.includes(x) ? 1 / this.seeds.length : 0]))
    const normalized = new Map<string, Map<string, number>>()
    for (const [i, row] of this.opinions) {
      const pos = [...row].map(([j, cell]) => [j, Math.max(0, [...cell.values()].reduce((s, v) => s + v, 0))] as const).filter(([, v]) => v > 0)
      const total = pos.reduce((s, [, v]) => s + v, 0)
      if (total > 0) normalized.set(i, new Map(pos.map(([j, v]) => [j, v / total])))
    }
    let t = new Map(p)
    for (let k = 0; k < this.iterations; k++) {
      const next = new Map([...peers].map(x => [x, this.alpha * p.get(x)!]))
      for (const [i, ti] of t) {
        // A peer that trusts nobody passes its weight to the seeds, as EigenTrust prescribes.
        const row = normalized.get(i) ?? p
        for (const [j, c] of row) next.set(j, next.get(j)! + (1 - this.alpha) * ti * c)
      }
      t = next
    }
    return t
  }

  score(peer: string): number {
    return this.scores().get(peer) ?? 0
  }

  /** Whether anyone has rated the peer or brought evidence against it. */
  known(peer: string): boolean {
    for (const row of this.opinions.values()) if (row.has(peer)) return true
    return false
  }
}
