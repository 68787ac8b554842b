// Ledger sync, independent of transport: gossip carries small `ledger.heads` and
// `ledger.proof` messages; a direct stream carries `ledger.request` and its `ledger.blocks`
// reply. handle() verifies everything before it counts and tells the caller what to send.
import { LedgerError, parseBlock, type Block, type RejectReason } from './block.ts'
import { makeProof, type DoubleSpendProof } from './doublespend.ts'
import type { Ledger } from './ledger.ts'

export const MAX_GOSSIP_BYTES = 64 * 1024
export const MAX_STREAM_BYTES = 1024 * 1024
/** Most heads per gossip message and most blocks per request; keeps both bounded. */
export const MAX_HEADS = 64
export const MAX_RANGE = 256
/** Blocks waiting for a dependency (a send not seen yet); beyond this the oldest are dropped and fetched again later. */
const MAX_PARKED = 4096
const PROOF_ARRIVED = ''

export interface Head {
  account: string
  seq: number
  hash: string
}

export type SyncMessage =
  | { type: 'ledger.heads'; heads: Head[] }
  | { type: 'ledger.request'; account: string; from: number; to: number }
  | { type: 'ledger.blocks'; blocks: Block[] }
  | { type: 'ledger.proof'; proof: DoubleSpendProof }
  /** The draft's credit.transfer, sent by the payer straight to the payee; `block` is the send. */
  | { type: 'credit.transfer'; amount: number; reason: string; timestamp: string; block: Block }

export const SYNC_TYPES = ['ledger.heads', 'ledger.request', 'ledger.blocks', 'ledger.proof', 'credit.transfer'] as const

/** The draft's message for a send this agent just made. */
export function creditTransfer(send: Block): SyncMessage {
  return { type: 'credit.transfer', amount: send.amount, reason: send.memo, timestamp: new Date(send.ts).toISOString(), block: send }
}

/** For an envelope layer that carries type and body apart: the first bad field, or undefined. */
export function checkSyncBody(type: string, body: unknown): string | undefined {
  try {
    checkMessage({ ...(body as object), type })
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

export interface SyncResult {
  /** Send back to the peer the message came from (over the same stream). */
  reply?: SyncMessage
  /** Ask the peer the message came from for these ranges. */
  requests: Array<Extract<SyncMessage, { type: 'ledger.request' }>>
  /** Publish on the ledger gossip topic. */
  gossip: SyncMessage[]
  accepted: number
  rejected: Array<{ reason: RejectReason; detail: string }>
  /** The heads received show the sender holding less of some chain than we do: ours would help it. */
  senderBehind?: boolean
}

export type SyncCounters = Record<RejectReason | 'accepted' | 'duplicate', number>

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

export function encodeSyncMessage(m: SyncMessage): Uint8Array {
  return enc.encode(JSON.stringify(m))
}

/** Bounds-checks and parses untrusted bytes; blocks inside are shape-checked, not yet verified. */
export function decodeSyncMessage(bytes: Uint8Array, limit = MAX_STREAM_BYTES): SyncMessage {
  if (bytes.length > limit) throw new LedgerError('oversized', `${bytes.length} bytes > ${limit}`)
  let x: any
  try {
    x = JSON.parse(dec.decode(bytes))
  } catch {
    throw new LedgerError('malformed', 'not UTF-8 JSON')
  }
  return checkMessage(x)
}

const isSeq = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0
const isAccount = (a: unknown): a is string => typeof a === 'string' && a.length > 0 && a.length <= 128
/** A block's time as ISO 8601, or undefined for one that is no time at all (instead of a RangeError). */
const isoTime = (ts: unknown): string | undefined => {
  const d = new Date(typeof ts === 'number' ? ts : NaN)
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString()
}
const isHead = (h: any): h is Head => h != null && isAccount(h.account) && isSeq(h.seq) && typeof h.hash === 'string' && /^[0-9a-f]{64}$/.test(h.hash)

function checkMessage(x: any): SyncMessage {
  const bad = (why: string): never => { throw new LedgerError('malformed', why) }
  switch (x?.type) {
    case 'ledger.heads':
      if (!Array.isArray(x.heads) || x.heads.length > MAX_HEADS || !x.heads.every(isHead)) bad('heads')
      return { type: x.type, heads: x.heads.map(({ account, seq, hash }: Head) => ({ account, seq, hash })) }
    case 'ledger.request':
      if (!isAccount(x.account) || !isSeq(x.from) || !isSeq(x.to) || x.to < x.from || x.to - x.from >= MAX_RANGE) bad('request range')
      return { type: x.type, account: x.account, from: x.from, to: x.to }
    case 'ledger.blocks':
      if (!Array.isArray(x.blocks) || x.blocks.length > MAX_RANGE) bad('blocks')
      return { type: x.type, blocks: x.blocks }
    case 'ledger.proof':
      if (x.proof == null || typeof x.proof !== 'object') bad('proof')
      return { type: x.type, proof: x.proof }
    case 'credit.transfer':
      if (x.block?.type !== 'send' || x.amount !== x.block.amount || x.reason !== x.block.memo || isoTime(x.block.ts) == null || x.timestamp !== isoTime(x.block.ts)) bad('credit.transfer disagrees with its block')
      return { type: x.type, amount: x.amount, reason: x.reason, timestamp: x.timestamp, block: x.block }
    default:
      return bad(`type ${String(x?.type)}`)
  }
}

export class LedgerSync {
  readonly counters: SyncCounters = Object.create(null)
  private readonly parked = new Map<string, Block>()
  private rotation = 0

  constructor(readonly ledger: Ledger) {}

  /** The own head, to gossip after every own block. */
  ownHead(): SyncMessage {
    return { type: 'ledger.heads', heads: [this.head(this.ledger.id)!] }
  }

  /**
   * A rotating slice of all held heads, to gossip periodically so chains of offline agents still
   * spread. Held, not derived: a peer holding another branch of a forked chain learns of the fork.
   */
  someHeads(): SyncMessage {
    const all = this.ledger.accounts().map(s => this.head(s.account)).filter(h => h != null)
    const start = all.length === 0 ? 0 : this.rotation % all.length
    const slice = [...all.slice(start), ...all.slice(0, start)].slice(0, MAX_HEADS)
    this.rotation += MAX_HEADS
    return { type: 'ledger.heads', heads: slice }
  }

  /**
   * Handles one message from a peer: raw bytes from the wire (size-checked against `limit`:
   * pass MAX_GOSSIP_BYTES for gossip) or an already-decoded object. Never throws for bad input.
   */
  async handle(input: Uint8Array | unknown, limit = MAX_STREAM_BYTES): Promise<SyncResult> {
    const out: SyncResult = { requests: [], gossip: [], accepted: 0, rejected: [] }
    let msg: SyncMessage
    try {
      msg = input instanceof Uint8Array ? decodeSyncMessage(input, limit) : checkMessage(input)
    } catch (err) {
      if (!(err instanceof LedgerError)) throw err
      this.count(out, err.reason, err.message)
      return out
    }
    switch (msg.type) {
      case 'ledger.heads':
        for (const h of msg.heads) {
          this.wantHead(h, out)
          if ((this.ledger.chainHead(h.account)?.seq ?? -1) > h.seq) out.senderBehind = true
        }
        break
      case 'ledger.request':
        out.reply = { type: 'ledger.blocks', blocks: this.ledger.blocksForSync(msg.account, msg.from, msg.to) }
        break
      case 'ledger.blocks':
      case 'credit.transfer':
        await this.takeBlocks(msg.type === 'ledger.blocks' ? msg.blocks : [msg.block], out)
        out.requests = dedupe(out.requests)
        break
      case 'ledger.proof': {
        let added: boolean
        try {
          added = await this.ledger.addProof(msg.proof)
        } catch (err) {
          if (!(err instanceof LedgerError)) throw err
          this.count(out, err.reason, err.message)
          break
        }
        if (added) {
          // Passed on as the signed blocks alone, without whatever the sender wrapped around them.
          out.gossip.push({ type: 'ledger.proof', proof: makeProof(parseBlock(msg.proof.a), parseBlock(msg.proof.b)) })
          // A monitoring grant may have been waiting for exactly this proof.
          await this.retryParked(new Set([PROOF_ARRIVED]), out)
        }
        else if (!this.ledger.isFlagged((msg.proof as any)?.a?.account)) this.count(out, 'malformed', 'invalid double-spend proof')
        break
      }
    }
    return out
  }

  private head(account: string): Head | undefined {
    const h = this.ledger.chainHead(account)
    return h && { account, ...h }
  }

  private wantHead(h: Head, out: SyncResult): void {
    const from = this.ledger.fetchFrom(h.account)
    // Of a forked account only the part before the fork counts; its branches are fetched when a receive needs them.
    const last = Math.min(h.seq, this.ledger.forkSeq(h.account) - 1, from + MAX_RANGE - 1)
    if (last >= from) out.requests.push({ type: 'ledger.request', account: h.account, from, to: last })
    else if (h.seq < from && this.ledger.hashAt(h.account, h.seq) !== h.hash) {
      // A different block at a seq we hold: fetch it, it may complete a double-spend proof.
      out.requests.push({ type: 'ledger.request', account: h.account, from: h.seq, to: h.seq })
    }
  }

  private async takeBlocks(raw: unknown[], out: SyncResult): Promise<void> {
    const blocks: Block[] = []
    for (const x of raw) {
      try {
        blocks.push(parseBlock(x))
      } catch (err) {
        this.count(out, (err as LedgerError).reason, (err as LedgerError).message)
      }
    }
    blocks.sort((a, b) => (a.account < b.account ? -1 : a.account > b.account ? 1 : a.seq - b.seq))
    const advanced = new Set<string>()
    for (const b of blocks) await this.takeOne(b, out, advanced)
    await this.retryParked(advanced, out)
    const tails = new Map<string, number>()
    for (const b of blocks) tails.set(b.account, Math.max(tails.get(b.account) ?? -1, b.seq))
    // A full range means the sender may have more: keep pulling until a short reply.
    for (const [account, last] of tails) {
      if (raw.length >= MAX_RANGE && this.ledger.chainHead(account)?.seq === last) out.requests.push({ type: 'ledger.request', account, from: last + 1, to: last + MAX_RANGE })
    }
  }

  private async takeOne(b: Block, out: SyncResult, advanced: Set<string>): Promise<void> {
    // Behind a parked block its successors cannot link yet; they wait with it instead of counting as gaps.
    if (this.parked.has(`${b.account}:${b.seq - 1}`)) return this.park(b)
    const r = await this.ledger.ingest(b)
    switch (r.status) {
      case 'accepted':
        out.accepted++
        this.counters.accepted = (this.counters.accepted ?? 0) + 1
        advanced.add(b.account)
        break
      case 'duplicate':
        this.counters.duplicate = (this.counters.duplicate ?? 0) + 1
        break
      case 'missing':
        this.park(b)
        if (r.account !== '') {
          const from = this.ledger.fetchFrom(r.account)
          out.requests.push({ type: 'ledger.request', account: r.account, from, to: from + MAX_RANGE - 1 })
        }
        break
      case 'fork':
        this.count(out, 'double-spend', `${b.account}#${b.seq}`)
        out.gossip.push({ type: 'ledger.proof', proof: r.proof })
        // The block is kept as part of the other branch: a parked receive may have waited for it.
        advanced.add(b.account)
        break
      case 'rejected':
        this.count(out, r.reason, r.detail)
        if (r.reason === 'gap') {
          const from = this.ledger.fetchFrom(b.account)
          out.requests.push({ type: 'ledger.request', account: b.account, from, to: Math.min(b.seq, from + MAX_RANGE - 1) })
        }
        // The next block of a chain that does not link to our head: the sender may hold another
        // block at our head's seq, which together with ours proves a fork it would otherwise hide.
        if (r.reason === 'bad-link' && b.seq > 0) out.requests.push({ type: 'ledger.request', account: b.account, from: b.seq - 1, to: b.seq - 1 })
        break
    }
  }

  private park(b: Block): void {
    this.parked.set(`${b.account}:${b.seq}`, b)
    if (this.parked.size > MAX_PARKED) this.parked.delete(this.parked.keys().next().value!)
  }

  /** Parked blocks whose dependency may now be present, until a pass makes no progress. */
  private async retryParked(advanced: Set<string>, out: SyncResult): Promise<void> {
    let progress = advanced.size > 0
    while (progress && this.parked.size > 0) {
      progress = false
      const waiting = [...this.parked.values()].sort((a, b) => a.seq - b.seq)
      this.parked.clear()
      for (const b of waiting) {
        const before = out.accepted
        await this.takeOne(b, out, advanced)
        progress ||= out.accepted > before
      }
    }
  }

  private count(out: SyncResult, reason: RejectReason, detail: string): void {
    this.counters[reason] = (this.counters[reason] ?? 0) + 1
    out.rejected.push({ reason, detail })
  }
}

function dedupe<T>(xs: T[]): T[] {
  return [...new Map(xs.map(x => [JSON.stringify(x), x])).values()]
}
