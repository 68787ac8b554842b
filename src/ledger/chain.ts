// One account's append-only chain and the state derived from it. A block is appended only
// after every rule holds; a failed check leaves the chain exactly as it was, so one bad block
// from the network cannot corrupt what an agent already knows. Acceptance reads only the chain
// itself (its claimed state); what a block moves also depends on forks proven elsewhere, so that
// derived state is kept apart and recomputed whenever a proof arrives (PROTOCOL.md 13, Forks).
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

/** What deriving a block's effect needs to know beyond its own chain. */
export interface Standing {
  policy: Policy
  /** Seq of the account's earliest proven fork, Infinity when none is known. */
  forkSeq(account: string): number
  /** Whether the send with this hash moves credits; undefined while its chain is not derived that far. */
  moves(hash: string): boolean | undefined
}

export interface VerifyContext extends Standing {
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

/** Where a block comes from: a peer's block has its signature checked, an own block must also be funded. */
export type Origin = 'peer' | 'store' | 'self'

const emptyState = (account: string): AccountState => ({
  account, owner_id: '', seq: -1, head: ZERO_HASH, lastTs: 0, balance: 0, earned_total: 0,
  spent_total: 0, pending: 0, received_total: 0, grants_total: 0, fees_total: 0
})

/** A block that moves nothing: a receive of a send that moves nothing. */
const VOID = null
/** A block that moves nothing because its account could not afford it in the derived state. */
const UNFUNDED = 'unfunded'

export class Chain {
  readonly blocks: Block[] = []
  readonly hashes: string[] = []
  private readonly index = new Map<string, number>()
  private readonly reservations = new Map<string, Reservation>()
  private readonly received = new Set<string>()
  readonly grantMemory = new GrantMemory()
  /** What the blocks claim, as if no fork had been proven anywhere: the acceptance rules read this. */
  private s: AccountState
  private readonly claims: Delta[] = []
  // Derived: what the blocks up to the account's fork actually move.
  private d: AccountState
  /** Per derived block: whether it moves credits. */
  private readonly moved: boolean[] = []
  readonly history: BalancePoint[] = []
  private readonly held = new Map<string, number>()
  private readonly credited = new Set<string>()

  constructor(readonly account: string) {
    this.s = emptyState(account)
    this.d = emptyState(account)
  }

  /** The derived state: only blocks before a proven fork count, void and unfunded blocks move nothing. */
  get state(): AccountState {
    return { ...this.d }
  }

  /** The state the chain's blocks claim; it decides acceptance and where the next block goes. */
  get claimed(): AccountState {
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

  /** Whether a receive on this chain credits the send `sendHash`. */
  credits(sendHash: string): boolean {
    return this.credited.has(sendHash)
  }

  /** Derived remainder of a reservation: 0 when the reserve itself moved nothing. */
  reserved(hash: string): number {
    return this.held.get(hash) ?? 0
  }

  /** Whether block `seq` moves credits; undefined while it is not derived (yet, or at all: at or after a fork). */
  movesAt(seq: number): boolean | undefined {
    return this.moved[seq]
  }

  /**
   * Verifies `block` as this chain's next block without changing anything; commit() appends it.
   * Blocks from the store or signed by this agent skip the signature check; an own block must
   * also be funded in the derived state, so an agent never signs what it already knows will move nothing.
   */
  async check(block: Block, ctx: VerifyContext, origin: Origin = 'peer'): Promise<Checked> {
    const hash = hashBlock(block)
    this.checkPosition(block)
    if (origin === 'peer' && !(await verifyBlockSignature(block))) throw new LedgerError('bad-signature', `${block.account}#${block.seq}`)
    const claim = this.checkRules(block, hash, ctx, origin)
    const derivedToHead = this.moved.length === this.blocks.length && block.seq < ctx.forkSeq(this.account)
    if (origin === 'self' && derivedToHead && this.effect(block, claim, ctx) === UNFUNDED) {
      throw new LedgerError('overspend', `${block.account} cannot fund #${block.seq} once proven forks are counted`)
    }
    return { block, hash, claim }
  }

  /** Appends and derives a block check() passed, with nothing appended in between. */
  commit(c: Checked, ctx: VerifyContext): string {
    if (c.block.seq !== this.s.seq + 1) throw new Error(`${this.account}#${c.block.seq} was checked against another head`)
    this.apply(c.block, c.hash, c.claim)
    this.derive(ctx)
    return c.hash
  }

  async append(block: Block, ctx: VerifyContext, origin: Origin = 'peer'): Promise<string> {
    return this.commit(await this.check(block, ctx, origin), ctx)
  }

  /** Forgets the derived state; derive() rebuilds it from the blocks. */
  resetDerived(): void {
    this.d = emptyState(this.account)
    this.moved.length = 0
    this.history.length = 0
    this.held.clear()
    this.credited.clear()
  }

  /**
   * Derives blocks up to the head or the account's fork, whichever comes first. Returns false when
   * it stopped at a receive whose send is not derived yet; refs only point back in time, so
   * deriving the other chains first always lets it go on.
   */
  derive(st: Standing): boolean {
    const end = Math.min(this.blocks.length, st.forkSeq(this.account))
    while (this.moved.length < end) {
      const i = this.moved.length
      const e = this.effect(this.blocks[i], this.claims[i], st)
      if (e === undefined) return false
      this.settle(i, e === UNFUNDED ? VOID : e)
    }
    return true
  }

  /** What block `b` moves on top of the derived state: its claim, VOID, UNFUNDED, or undefined when its send is not derived yet. */
  private effect(b: Block, claim: Delta, st: Standing): Delta | typeof VOID | typeof UNFUNDED | undefined {
    if (b.type === 'receive') {
      const sendMoves = st.moves(b.ref)
      if (sendMoves !== true) return sendMoves === false ? VOID : undefined
    }
    const e = { ...claim }
    if (b.type === 'release') e.pending = -this.reserved(b.ref)
    if (b.type === 'send' && b.ref !== ZERO_HASH && this.reserved(b.ref) < b.amount) return UNFUNDED
    const d = this.d
    const after: AccountState = { ...d, balance: d.balance + e.earned - e.spent, pending: d.pending + e.pending, received_total: d.received_total + e.received }
    if (after.balance - after.pending < -creditLimit(st.policy, after)) return UNFUNDED
    return e
  }

  private settle(i: number, e: Delta | typeof VOID): void {
    const b = this.blocks[i]
    const hash = this.hashes[i]
    const d = this.d
    d.seq = b.seq
    d.head = hash
    d.lastTs = b.ts
    if (b.type === 'genesis') d.owner_id = b.memo
    if (e !== VOID) {
      addDelta(d, e)
      if (b.type === 'receive') this.credited.add(b.ref)
      if (b.type === 'reserve') this.held.set(hash, b.amount)
      if (b.type === 'release') this.held.delete(b.ref)
      if (b.type === 'send' && b.ref !== ZERO_HASH) this.held.set(b.ref, this.reserved(b.ref) - b.amount)
    }
    this.moved.push(e !== VOID)
    this.history.push({ seq: b.seq, ts: b.ts, balance: d.balance })
  }

  private checkPosition(b: Block): void {
    if (b.account !== this.account) throw new LedgerError('malformed', 'block of another account')
    if (b.seq <= this.s.seq) throw new LedgerError('bad-seq', `seq ${b.seq} already taken`)
    if (b.seq > this.s.seq + 1) throw new LedgerError('gap', `expected seq ${this.s.seq + 1}, got ${b.seq}`)
    if (b.prev !== this.s.head) throw new LedgerError('bad-link', `prev of #${b.seq} is not the hash of #${this.s.seq}`)
    if ((b.seq === 0) !== (b.type === 'genesis')) throw new LedgerError('bad-type', 'genesis is exactly seq 0')
  }

  /** Returns the balance effects of a valid block, or throws why it is invalid. */
  private checkRules(b: Block, hash: string, ctx: VerifyContext, origin: Origin): Delta {
    const { policy } = ctx
    const s = this.s
    const prevTs = b.seq === 0 ? undefined : s.lastTs
    if (prevTs !== undefined && b.ts < prevTs) throw new LedgerError('bad-ts', 'ts goes backwards')
    // Judged against the clock when the block arrived; on replay a clock stepped back since
    // would otherwise refuse the agent's own store and keep it from starting.
    if (origin !== 'store' && b.ts > ctx.now + policy.maxClockSkewMs) throw new LedgerError('bad-ts', 'ts in the future')
    const fee = requiredFee(policy, b, prevTs)
    if (b.type !== 'fee' && b.fee !== fee) throw new LedgerError('bad-fee', `fee ${b.fee}, required ${fee}`)
    const d: Delta = { earned: 0, spent: b.fee, pending: 0, received: 0, grant: 0, fee: b.fee }

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
    this.claims.push(d)
    const s = this.s
    s.seq = b.seq
    s.head = hash
    s.lastTs = b.ts
    addDelta(s, d)
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
  }
}

/** A block verified as its chain's next one, with the effect its rules gave it. */
export interface Checked {
  block: Block
  hash: string
  claim: Delta
}

interface Delta {
  earned: number
  spent: number
  pending: number
  received: number
  grant: number
  fee: number
}

/** One block's effect on the totals; the claimed and the derived state count it the same way. */
function addDelta(s: Pick<AccountState, 'earned_total' | 'spent_total' | 'balance' | 'pending' | 'received_total' | 'grants_total' | 'fees_total'>, d: Delta): void {
  s.earned_total += d.earned
  s.spent_total += d.spent
  s.balance = s.earned_total - s.spent_total
  s.pending += d.pending
  s.received_total += d.received
  s.grants_total += d.grant
  s.fees_total += d.fee
}

function checkDeclaredFee(b: Block, required: number, policy: Policy): void {
  const rate = policy.fees.enabled ? declaredFeeRate(policy, b.memo) : undefined
  const declared = b.fee - required
  if (rate == null) throw new LedgerError('bad-fee', `no declarable fee '${b.memo}'`)
  if (b.amount !== 0 || b.counterparty !== '' || b.ref !== ZERO_HASH) throw new LedgerError('bad-fee', 'a fee block moves nothing else')
  if (declared <= 0 || declared % rate !== 0) throw new LedgerError('bad-fee', `declared ${declared} is not a multiple of ${rate}`)
}
