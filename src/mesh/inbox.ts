import { decodeEnvelope, type Decoded, type Envelope, type RejectReason } from '../protocol/envelope.ts'
import { LIMITS } from '../protocol/limits.ts'
import { RateLimiter } from './rate-limit.ts'

export type RejectCounts = Partial<Record<RejectReason, number>>

export interface AdmitOptions {
  /** The peer the bytes came from (gossip publisher or stream remote). */
  transportFrom?: string
  /** Refuse envelopes signed by someone other than `transportFrom` (gossip publishes only one's own). */
  senderMustMatch?: boolean
  now?: number
  maxBytes?: number
  /** The types the channel carries (a gossip topic's); any other is `unknown-type`. */
  types?: readonly string[]
}

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

  async accept (bytes: Uint8Array, opts: AdmitOptions = {}): Promise<Envelope | undefined> {
    const d = await this.admit(bytes, opts)
    return d.ok ? d.env : undefined
  }

  /** Like accept, but says why a message was refused (the relay maps reasons to gossip verdicts). */
  async admit (bytes: Uint8Array, opts: AdmitOptions = {}): Promise<Decoded> {
    const now = opts.now ?? Date.now()
    // Rate-limit on the transport sender too (the gossip publisher, or the stream peer), so garbage
    // that never decodes to a signer still costs whoever sent it. Not the gossip forwarder: a
    // relay forwards everyone's messages and must not be throttled as one sender.
    if (opts.transportFrom != null && !this.rate.take(`conn:${opts.transportFrom}`, now)) {
      return this.refuse('rate-limited', `too many messages via ${opts.transportFrom}`, opts.transportFrom, now)
    }
    const d = await decodeEnvelope(bytes, now, opts.maxBytes)
    if (!d.ok) return this.refuse(d.reason, d.detail, opts.transportFrom, now)
    if (opts.transportFrom != null && opts.senderMustMatch === true && d.env.from !== opts.transportFrom) {
      return this.refuse('sender-mismatch', `envelope from ${d.env.from} published by ${opts.transportFrom}`, opts.transportFrom, now)
    }
    if (opts.types != null && !opts.types.includes(d.env.type)) {
      return this.refuse('unknown-type', `${d.env.type} does not belong here (this channel carries ${opts.types.join(', ')})`, d.env.from, now)
    }
    const key = `${d.env.from}/${d.env.id}`
    if (this.seen.has(key)) return this.refuse('replay', `message ${d.env.id} already seen`, d.env.from, now)
    if (!this.rate.take(`from:${d.env.from}`, now)) return this.refuse('rate-limited', `${d.env.from} sends too fast`, d.env.from, now)
    this.remember(key, d.env.ts, now)
    this.accepted++
    return d
  }

  private refuse (reason: RejectReason, detail: string, from: string | undefined, now: number): Decoded {
    this.reject(reason, detail, from, now)
    return { ok: false, reason, detail }
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
