import { decodeEnvelope, type Envelope, type RejectReason } from '../protocol/envelope.ts'
import { LIMITS } from '../protocol/limits.ts'
import { RateLimiter } from './rate-limit.ts'

export type RejectCounts = Partial<Record<RejectReason, number>>

export interface Rejection { reason: RejectReason, detail: string, from?: string, at: number }

/**
 * The one door every incoming message goes through: stateless checks (decodeEnvelope), then
 * replay and per-sender rate. Rejections are counted by reason for the diagnostics panel.
 */
export class Inbox {
  readonly counts: RejectCounts = {}
  readonly recent: Rejection[] = []
  accepted = 0
  private readonly seen = new Map<string, number>()
  private readonly rate = new RateLimiter(LIMITS.rateBurst, LIMITS.ratePerSecond)

  constructor (private readonly onReject?: (r: Rejection) => void) {}

  async accept (bytes: Uint8Array, opts: { transportFrom?: string, now?: number, maxBytes?: number } = {}): Promise<Envelope | undefined> {
    const now = opts.now ?? Date.now()
    // Rate-limit on the connection we got it from too, so a flood of garbage costs its sender.
    if (opts.transportFrom != null && !this.rate.take(`conn:${opts.transportFrom}`, now)) {
      this.reject('rate-limited', `too many messages via ${opts.transportFrom}`, opts.transportFrom, now)
      return undefined
    }
    const d = await decodeEnvelope(bytes, now, opts.maxBytes)
    if (!d.ok) {
      this.reject(d.reason, d.detail, opts.transportFrom, now)
      return undefined
    }
    const key = `${d.env.from}/${d.env.id}`
    if (this.seen.has(key)) {
      this.reject('replay', `message ${d.env.id} already seen`, d.env.from, now)
      return undefined
    }
    if (!this.rate.take(`from:${d.env.from}`, now)) {
      this.reject('rate-limited', `${d.env.from} sends too fast`, d.env.from, now)
      return undefined
    }
    this.remember(key, d.env.ts, now)
    this.accepted++
    return d.env
  }

  reject (reason: RejectReason, detail: string, from: string | undefined, now = Date.now()): void {
    this.counts[reason] = (this.counts[reason] ?? 0) + 1
    const r = { reason, detail, from, at: now }
    this.recent.push(r)
    if (this.recent.length > 50) this.recent.shift()
    this.onReject?.(r)
  }

  /** Ids are kept as long as their timestamp is inside the skew window; older ones are stale anyway. */
  private remember (key: string, ts: number, now: number): void {
    this.seen.set(key, ts)
    if (this.seen.size % 512 === 0) {
      for (const [k, t] of this.seen) if (Math.abs(now - t) > LIMITS.maxClockSkewMs) this.seen.delete(k)
    }
  }
}
