// One account's append-only chain and the state derived from it. A block is appended only
// after every rule holds; a failed check leaves the chain exactly as it was, so one bad block
// from the network cannot corrupt what an agent already knows.
import { hashBlock, verifyBlockSignature, LedgerError, ZERO_HASH, type Block } from './block.ts'
import { declaredFeeRate, requiredFee, type Policy } from './policy.ts'
import { checkGrant, GrantMemory, leadingZeroBits } from './grants.ts'

/** The draft's account model, always recomputed from blocks. */
export interface AccountState {
  account: string
  owner_id: string
  /** Head sequence number, -1 while the chain is empty. */
  seq: number
  head: string
  lastTs: number
  /** earned_total - spent_total. */
  balance: number
  /** Receives and grants. */
  earned_total: number
  /** Sends and fees. */
  spent_total: number
  /** Reserved for open tasks; part of balance but not spendable. */
  pending: number
  received_total: number
  grants_total: number
  fees_total: number
}

export interface BalancePoint {
  seq: number
  ts: number
  balance: number
}

/** Thrown when a block refers to something this verifier has not seen yet: not invalid, just early. */
export class MissingDependency extends LedgerError {
  /** account: whose chain to fetch ('' when the thing comes by gossip, as a proof does). */
  constructor(readonly account: string, detail: string) {
    super('unknown-ref', detail)
  }
}

export interface VerifyContext {
  policy: Policy
  now: number
  /** A block this verifier already accepted, on any chain. */
  lookup(hash: string): Block | undefined
  chain(account: string): Chain | undefined
  hasProof(id: string): boolean
}

interface Reservation {
  remaining: number
  counterparty: string
}

export function creditLimit(policy: Policy, s: AccountState): number {
  return Math.min(policy.creditLimit.max, Math.floor(s.received_total * policy.creditLimit.ratio))
}

export class Chain {
  readonly blocks: Block[] = []
  readonly hashes: string[] = []
  readonly history: BalancePoint[] = []
  private readonly index = new Map<string, number>()
  private readonly reservations = new Map<string, Reservation>()
  private readonly received = new Set<string>()
  readonly grantMemory = new GrantMemory()
  private s: AccountState

  constructor(readonly account: string) {
    this.s = {
      account, owner_id: '', seq: -1, head: ZERO_HASH, lastTs: 0, balance: 0, earned_total: 0,
      spent_total: 0, pending: 0, received_total: 0, grants_total: 0, fees_total: 0
    }
  }

  get state(): AccountState {
    return { ...this.s }
  }

  seqOf(hash: string): number | undefined {
    return this.index.get(hash)
  }

  reservation(hash: string): Readonly<Reservation> | undefined {
    return this.reservations.get(hash)
  }

  openReservations(): Array<{ hash: string; ts: number } & Reservation> {
    return [...this.reservations].map(([hash, r]) => ({ hash, ts: this.blocks[this.index.get(hash)!].ts, ...r }))
  }

  hasReceived(sendHash: string): boolean {
    return this.received.has(sendHash)
  }

  /**
   * Verifies `block` as this chain's next block and appends it. skipSignature is for blocks
   * this agent has just signed itself; everything from outside goes through the signature check.
   */
  async append(block: Block, ctx: VerifyContext, skipSignature = false): Promise<string> {
    const hash = hashBlock(block)
    this.checkPosition(block)
    if (!skipSignature && !(await verifyBlockSignature(block))) throw new LedgerError('bad-signature', `${block.account}#${block.seq}`)
    const delta = this.checkRules(block, hash, ctx)
    this.apply(block, hash, delta)
    return hash
  }

  private checkPosition(b: Block): void {
    if (b.account !== this.account) throw new LedgerError('malformed', 'block of another account')
    if (b.seq <= this.s.seq) throw new LedgerError('bad-seq', `seq ${b.seq} already taken`)
    if (b.seq > this.s.seq + 1) throw new LedgerError('gap', `expected seq ${this.s.seq + 1}, got ${b.seq}`)
    if (b.prev !== this.s.head) throw new LedgerError('bad-link', `prev of #${b.seq} is not the hash of #${this.s.seq}`)
    if ((b.seq === 0) !== (b.type === 'genesis')) throw new LedgerError('bad-type', 'genesis is exactly seq 0')
  }

  /** Returns the balance effects of a valid block, or throws why it is invalid. */
  private checkRules(b: Block, hash: string, ctx: VerifyContext): Delta {
    const { policy } = ctx
    const s = this.s
    const prevTs = b.seq === 0 ? undefined : s.lastTs
    if (prevTs !== undefined && b.ts < prevTs) throw new LedgerError('bad-ts', 'ts goes backwards')
    if (b.ts > ctx.now + policy.maxClockSkewMs) throw new LedgerError('bad-ts', 'ts in the future')
    const fee = requiredFee(policy, b, prevTs)
    if (b.type !== 'fee' && b.fee !== fee) throw new LedgerError('bad-fee', `fee ${b.fee}, required ${fee}`)
    const d: Delta = { earned: 0, spent: b.fee, pending: 0, received: 0, grant: 0 }

    switch (b.type) {
      case 'genesis':
        if (b.counterparty !== '' || b.amount !== policy.grants.registration) throw new LedgerError('bad-grant', 'genesis grants exactly the registration grant')
        if (leadingZeroBits(hash) < policy.grants.registrationWorkBits) throw new LedgerError('bad-grant', 'genesis lacks its registration work')
        d.earned = d.grant = b.amount
        break
      case 'send': {
        this.checkCounterparty(b)
        if (b.amount <= 0) throw new LedgerError('bad-amount', 'send of nothing')
        d.spent += b.amount
        if (b.ref !== ZERO_HASH) {
          const r = this.reservations.get(b.ref)
          if (r == null) throw new LedgerError('unknown-ref', 'settles no open reservation')
          if (r.counterparty !== b.counterparty || b.amount > r.remaining) throw new LedgerError('bad-amount', 'settlement exceeds or mismatches its reservation')
          d.pending = -b.amount
        }
        break
      }
      case 'receive': {
        const send = ctx.lookup(b.ref)
        if (send == null) throw new MissingDependency(b.counterparty, `send ${b.ref} not known`)
        if (send.type !== 'send' || send.account !== b.counterparty || send.counterparty !== b.account) throw new LedgerError('unknown-ref', 'ref is not a send to this account')
        if (b.amount !== send.amount) throw new LedgerError('bad-amount', 'receive amount differs from the send')
        if (this.received.has(b.ref)) throw new LedgerError('replay', `send ${b.ref} already received`)
        d.earned = d.received = b.amount
        break
      }
      case 'grant':
        checkGrant(b, this, ctx)
        d.earned = d.grant = b.amount
        break
      case 'reserve':
        this.checkCounterparty(b)
        if (b.amount <= 0 || b.ref !== ZERO_HASH) throw new LedgerError('bad-amount', 'reserve needs an amount and no ref')
        d.pending = b.amount
        break
      case 'release': {
        const r = this.reservations.get(b.ref)
        if (r == null) throw new LedgerError('unknown-ref', 'releases no open reservation')
        if (b.amount !== r.remaining || b.counterparty !== r.counterparty) throw new LedgerError('bad-amount', 'release must return the whole remainder')
        d.pending = -b.amount
        break
      }
      case 'fee':
        checkDeclaredFee(b, fee, policy)
        break
    }

    const after: AccountState = { ...s, balance: s.balance + d.earned - d.spent, pending: s.pending + d.pending, received_total: s.received_total + d.received }
    if (after.balance - after.pending < -creditLimit(policy, after)) throw new LedgerError('overspend', `${b.account} would have ${after.balance - after.pending} spendable`)
    return d
  }

  private checkCounterparty(b: Block): void {
    if (b.counterparty === b.account) throw new LedgerError('self-transfer', 'counterparty is the account itself')
    if (b.counterparty === '') throw new LedgerError('malformed', 'counterparty missing')
  }

  private apply(b: Block, hash: string, d: Delta): void {
    const s = this.s
    s.seq = b.seq
    s.head = hash
    s.lastTs = b.ts
    s.earned_total += d.earned
    s.spent_total += d.spent
    s.balance = s.earned_total - s.spent_total
    s.pending += d.pending
    s.received_total += d.received
    s.grants_total += d.grant
    s.fees_total += b.fee
    if (b.type === 'genesis') s.owner_id = b.memo
    if (b.type === 'receive') this.received.add(b.ref)
    if (b.type === 'reserve') this.reservations.set(hash, { remaining: b.amount, counterparty: b.counterparty })
    if (b.type === 'release') this.reservations.delete(b.ref)
    if (b.type === 'send' && b.ref !== ZERO_HASH) {
      const r = this.reservations.get(b.ref)!
      r.remaining -= b.amount
      if (r.remaining === 0) this.reservations.delete(b.ref)
    }
    if (b.type === 'grant') this.grantMemory.record(b)
    this.blocks.push(b)
    this.hashes.push(hash)
    this.index.set(hash, b.seq)
    this.history.push({ seq: b.seq, ts: b.ts, balance: s.balance })
  }
}

interface Delta {
  earned: number
  spent: number
  pending: number
  received: number
  grant: number
}

function checkDeclaredFee(b: Block, required: number, policy: Policy): void {
  const rate = policy.fees.enabled ? declaredFeeRate(policy, b.memo) : undefined
  const declared = b.fee - required
  if (rate == null) throw new LedgerError('bad-fee', `no declarable fee '${b.memo}'`)
  if (b.amount !== 0 || b.counterparty !== '' || b.ref !== ZERO_HASH) throw new LedgerError('bad-fee', 'a fee block moves nothing else')
  if (declared <= 0 || declared % rate !== 0) throw new LedgerError('bad-fee', `declared ${declared} is not a multiple of ${rate}`)
}
