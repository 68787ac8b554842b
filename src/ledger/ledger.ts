// The agent's ledger: its own chain plus every other chain it has verified, the double-spend
// proofs it knows, and the calls the agent makes (transfer, grants, tasks, work settlement).
// All mutations run one at a time: two concurrent appends to one chain would fork it.
// Balances are derived from chains and proofs together; a new proof re-derives every account,
// so agents that learn the same things in any order end with the same state.
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { BLOCK_VERSION, hashBlock, LedgerError, parseBlock, signBlock, verifyBlockSignature, ZERO_HASH, type Block, type RejectReason, type UnsignedBlock } from './block.ts'
import { Chain, MissingDependency, type AccountState, type Checked, type BalancePoint, type VerifyContext } from './chain.ts'
import { DEFAULT_POLICY, requiredFee, type Policy } from './policy.ts'
import { grantAmount, mineGenesis, type GrantKind } from './grants.ts'
import { makeProof, parseProof, proofId, type DoubleSpendProof } from './doublespend.ts'
import { parseWorkMemo, receiptUnits, verifyReceipt, workMemo, type WorkReceipt } from './receipts.ts'
import type { LedgerStore, StoredRecord } from './store-types.ts'

export interface LedgerOptions {
  policy?: Policy
  /** owner_id written into the genesis block of a new chain. */
  owner?: string
  clock?: () => number
  /** Acknowledge incoming sends automatically (the payee's half of a transfer). */
  autoReceive?: boolean
  /**
   * No own block is signed before this settles. An agent whose stored chain may be behind the
   * one the mesh holds (restored from a backup, or its ledger lost while its key was kept) would
   * otherwise sign a second block at a seq it already used: a fork, which brands it a cheat.
   * Genesis waits too, unless the chain is not yet known to anyone (a new identity).
   */
  signAfter?: Promise<unknown>
}

export type IngestOutcome =
  | { status: 'accepted'; hash: string }
  | { status: 'duplicate' }
  | { status: 'missing'; account: string; detail: string }
  | { status: 'fork'; proof: DoubleSpendProof }
  | { status: 'rejected'; reason: RejectReason; detail: string }

export interface LedgerEvents {
  block: { block: Block; hash: string; own: boolean }
  flagged: { account: string; proof: DoubleSpendProof }
  rejected: { reason: RejectReason; detail: string }
}

/** What a worker gets with a task.request: where to find the client's reservation. */
export interface TaskRequest {
  taskId: string
  client: string
  worker: string
  amount: number
  reserve: string
}

/** Step 5 of the draft's flow: the worker's report, pointing at its receive block. */
export interface TaskResult {
  taskId: string
  status: 'ok' | 'failed'
  earned: number
  receive?: string
}

export interface Audit {
  /** Registration grants and failsafe grants: the only way credits come into being. */
  grants: number
  /** Fees, all burned. */
  burned: number
  /** Sum of balances (pending included). */
  balances: number
  /** Sent but not yet received. */
  inFlight: number
  /** grants - burned; equals balances + inFlight on a consistent view. */
  supply: number
}

type Listener<K extends keyof LedgerEvents> = (e: LedgerEvents[K]) => void

export class Ledger {
  readonly id: string
  readonly policy: Policy
  private readonly chains = new Map<string, Chain>()
  private readonly byHash = new Map<string, Block>()
  /**
   * Signed blocks of forked accounts at or after their fork that no held chain links to (the
   * other branch): they move nothing, but a receive of one must still be verifiable, or the
   * payee's chain would stall here while agents holding that branch go on.
   */
  private readonly beyondFork = new Map<string, Block[]>()
  private readonly proofs = new Map<string, DoubleSpendProof>()
  private readonly flags = new Map<string, number>()
  private readonly listeners = new Map<keyof LedgerEvents, Set<(e: any) => void>>()
  private readonly clock: () => number
  private readonly autoReceive: boolean
  /** Unset once signing may go on (see LedgerOptions.signAfter). */
  private held?: Promise<unknown>
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(private readonly store: LedgerStore, private readonly key: PrivateKey, opts: LedgerOptions) {
    this.id = peerIdFromPrivateKey(key).toString()
    this.policy = opts.policy ?? DEFAULT_POLICY
    this.clock = opts.clock ?? Date.now
    this.autoReceive = opts.autoReceive ?? true
    // Whether the wait ends well or not, signing goes on: the caller decides when it is safe.
    if (opts.signAfter != null) this.held = opts.signAfter.catch(() => undefined).then(() => { this.held = undefined })
  }

  /** Replays the store (rules re-checked, signatures trusted: the store holds only verified blocks) and writes genesis for a new agent. */
  static async open(store: LedgerStore, key: PrivateKey, opts: LedgerOptions = {}): Promise<Ledger> {
    const l = new Ledger(store, key, opts)
    for (const r of await store.load()) {
      if (r.kind === 'proof') l.recordProof(r.proof)
      else if (r.block.seq >= l.forkSeq(r.block.account)) l.holdBeyondFork(r.block, hashBlock(r.block))
      else l.byHash.set(await l.chainOf(r.block.account).append(r.block, l.ctx(), 'store'), r.block)
    }
    if (l.own.claimed.seq < 0) {
      const genesis = l.genesis(opts.owner ?? '')
      // Held back, genesis comes once the mesh had its say: it may still hold the chain.
      if (opts.signAfter == null) await genesis
      else genesis.catch(err => l.emit('rejected', { reason: err.reason ?? 'store-failed', detail: String(err.message) }))
    }
    // A send stored just before the agent died (a killed process, a reloaded tab) was never
    // received, and nothing else would ever bring it back: it arrives as a duplicate.
    if (l.autoReceive) for (const hash of l.owedToSelf()) l.receiveLater(hash)
    return l
  }

  on<K extends keyof LedgerEvents>(event: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(event)
    if (set == null) this.listeners.set(event, (set = new Set()))
    set.add(fn)
    return () => set.delete(fn)
  }

  account(id: string = this.id): AccountState | undefined {
    return this.chains.get(id)?.state
  }

  accounts(): AccountState[] {
    return [...this.chains.values()].map(c => c.state)
  }

  /** Blocks seq from..to (inclusive) of one account, as far as known. */
  blocks(account: string, from = 0, to = Infinity): Block[] {
    return this.chains.get(account)?.blocks.slice(from, to + 1) ?? []
  }

  /** The head of the chain held for an account, past any fork: what sync advertises and fetches after. */
  chainHead(account: string): { seq: number; hash: string } | undefined {
    const s = this.chains.get(account)?.claimed
    return s != null && s.seq >= 0 ? { seq: s.seq, hash: s.head } : undefined
  }

  hashAt(account: string, seq: number): string | undefined {
    return this.chains.get(account)?.hashes[seq]
  }

  block(hash: string): Block | undefined {
    return this.byHash.get(hash)
  }

  history(account: string = this.id): BalancePoint[] {
    return [...(this.chains.get(account)?.history ?? [])]
  }

  isFlagged(account: string): boolean {
    return this.flags.has(account)
  }

  /** Seq of the account's earliest proven fork, Infinity when none: blocks from there on move nothing. */
  forkSeq(account: string): number {
    return this.flags.get(account) ?? Infinity
  }

  /** Where to fetch an account's chain from: past its held head, or from its fork, where a block another agent built on may sit on a branch this agent does not hold. */
  fetchFrom(account: string): number {
    return Math.min((this.chainHead(account)?.seq ?? -1) + 1, this.forkSeq(account))
  }

  /**
   * What a sync request for seq from..to of an account gets: the held chain and held blocks of
   * other branches, by seq, at most one reply's worth (to − from + 1 blocks).
   */
  blocksForSync(account: string, from: number, to: number): Block[] {
    const other = (this.beyondFork.get(account) ?? []).filter(b => b.seq >= from && b.seq <= to)
    const own = this.blocks(account, from, to)
    return other.length === 0 ? own : [...own, ...other].sort((x, y) => x.seq - y.seq).slice(0, to - from + 1)
  }

  knownProofs(): DoubleSpendProof[] {
    return [...this.proofs.values()]
  }

  audit(): Audit {
    let grants = 0, burned = 0, balances = 0, inFlight = 0
    for (const c of this.chains.values()) {
      const s = c.state
      grants += s.grants_total
      burned += s.fees_total
      balances += s.balance
      for (const [i, b] of c.blocks.entries()) {
        const hash = c.hashes[i]
        if (b.type === 'send' && this.moves(hash) === true && !this.chains.get(b.counterparty)?.credits(hash)) inFlight += b.amount
      }
    }
    return { grants, burned, balances, inFlight, supply: grants - burned }
  }

  // ---- the agent's own actions ----

  /** credit.transfer of the draft: the payer's half; the payee's receive completes it. */
  transfer(to: string, amount: number, reason = ''): Promise<Block> {
    return this.extend({ type: 'send', amount, counterparty: to, memo: reason })
  }

  /** The payee's half for a send this ledger already verified. */
  receive(sendHash: string): Promise<Block> {
    const send = this.byHash.get(sendHash)
    if (send == null) return Promise.reject(new LedgerError('unknown-ref', `send ${sendHash} not known`))
    return this.extend({ type: 'receive', amount: send.amount, counterparty: send.account, ref: sendHash })
  }

  claimGrant(kind: GrantKind, evidence: { counterparty?: string; ref?: string } = {}): Promise<Block> {
    return this.extend({ type: 'grant', memo: kind, amount: grantAmount(kind, this.policy.grants), ...evidence })
  }

  /** Claims whichever failsafe grants the own chain is eligible for now (reactivation, daily allowance). */
  async claimFailsafes(): Promise<Block[]> {
    const out: Block[] = []
    for (const kind of ['reactivation', 'daily'] as const) {
      try {
        out.push(await this.claimGrant(kind))
      } catch (err) {
        if ((err as LedgerError).reason !== 'bad-grant') throw err
      }
    }
    return out
  }

  /** Declares a broadcast, data or priority fee of `units` times its rate (no-op while fees are off). */
  async payFee(kind: 'broadcast' | 'data' | 'priority', units = 1): Promise<Block | undefined> {
    if (!this.policy.fees.enabled || units <= 0) return undefined
    return this.extend({ type: 'fee', memo: kind, fee: units * this.policy.fees[kind] })
  }

  /** Steps 1-2 of the draft: order a task and reserve its price as pending. */
  async reserveTask(worker: string, amount: number, taskId: string, priority = 0): Promise<TaskRequest> {
    if (priority >= this.policy.fees.priorityLevel) await this.payFee('priority')
    const b = await this.extend({ type: 'reserve', amount, counterparty: worker, memo: taskId })
    return { taskId, client: this.id, worker, amount, reserve: hashBlock(b) }
  }

  /** The worker's check before executing: the reservation is on the client's chain and still open. */
  reservationHolds(req: TaskRequest): boolean {
    const r = this.chains.get(req.client)?.reservation(req.reserve)
    const held = this.chains.get(req.client)?.reserved(req.reserve) ?? 0
    return r != null && r.counterparty === this.id && r.counterparty === req.worker && r.remaining >= req.amount && held >= req.amount
  }

  /** Step 4: pay the confirmed amount from the reservation and release the rest. */
  async settleTask(reserveHash: string, amount: number): Promise<Block> {
    const r = this.own.reservation(reserveHash)
    if (r == null) throw new LedgerError('unknown-ref', `no open reservation ${reserveHash}`)
    const send = await this.extend({ type: 'send', amount, counterparty: r.counterparty, ref: reserveHash })
    if (this.own.reservation(reserveHash) != null) await this.releaseTask(reserveHash)
    return send
  }

  /** A failed task gives its reservation back. */
  releaseTask(reserveHash: string): Promise<Block> {
    const r = this.own.reservation(reserveHash)
    if (r == null) return Promise.reject(new LedgerError('unknown-ref', `no open reservation ${reserveHash}`))
    return this.extend({ type: 'release', amount: r.remaining, counterparty: r.counterparty, ref: reserveHash })
  }

  /** Releases every reservation older than the policy's task timeout. */
  async expireTasks(): Promise<Block[]> {
    const cutoff = this.clock() - this.policy.taskTimeoutMs
    const out: Block[] = []
    for (const r of this.own.openReservations()) if (r.ts <= cutoff) out.push(await this.releaseTask(r.hash))
    return out
  }

  /** Step 5, on the worker: report the task with what its receive block earned. */
  taskResult(taskId: string, receiveHash?: string): TaskResult {
    const b = receiveHash ? this.byHash.get(receiveHash) : undefined
    const ok = b != null && b.account === this.id && b.type === 'receive'
    return { taskId, status: ok ? 'ok' : 'failed', earned: ok ? b.amount : 0, receive: ok ? receiveHash : undefined }
  }

  /** Units of a work session this client already paid, read from its own chain. */
  paidUnits(session: string, server: string): number {
    let units = 0
    for (const b of this.own.blocks) {
      const w = b.type === 'send' && b.counterparty === server ? parseWorkMemo(b.memo) : undefined
      if (w?.session === session) units = Math.max(units, w.units)
    }
    return units
  }

  /** The client pays a server for everything its latest signed receipt covers. */
  async settleWork(receipt: WorkReceipt): Promise<Block | undefined> {
    if (receipt.client !== this.id || !(await verifyReceipt(receipt))) throw new LedgerError('malformed', 'not a receipt this agent signed')
    const units = receiptUnits(receipt)
    const owed = (units - this.paidUnits(receipt.session, receipt.server)) * this.policy.work.pricePerUnit
    if (owed <= 0) return undefined
    return this.extend({ type: 'send', amount: owed, counterparty: receipt.server, memo: workMemo(receipt.session, units) })
  }

  // ---- blocks and proofs from the network ----

  /** Verifies a block from another agent and, when valid, adds it; never throws for bad input. */
  ingest(input: unknown): Promise<IngestOutcome> {
    let b: Block
    try {
      b = parseBlock(input)
    } catch (err) {
      return Promise.resolve(this.reject('malformed', (err as Error).message))
    }
    return this.serial(() => this.ingestNow(b))
  }

  /**
   * Verifies a double-spend proof from the network; true when it was new and valid. Rejects with
   * LedgerError('store-failed'), having changed nothing, when the proof could not be saved.
   */
  addProof(p: unknown): Promise<boolean> {
    return this.serial(async () => {
      const proof = await parseProof(p)
      if (proof == null || this.proofs.has(proofId(proof))) return false
      await this.save({ kind: 'proof', proof }, 'a double-spend proof')
      this.recordProof(proof)
      return true
    })
  }

  private async ingestNow(b: Block): Promise<IngestOutcome> {
    const chain = this.chainOf(b.account)
    const hash = hashBlock(b)
    if (this.byHash.has(hash)) return { status: 'duplicate' }
    if (b.seq >= this.forkSeq(b.account)) return this.keepBeyondFork(b, hash)
    if (b.seq <= chain.claimed.seq) return this.compareExisting(chain, b, hash)
    let checked: Checked
    try {
      checked = await chain.check(b, this.ctx())
    } catch (err) {
      if (err instanceof MissingDependency) return { status: 'missing', account: err.account, detail: err.message }
      if (err instanceof LedgerError) return this.reject(err.reason, err.message)
      throw err
    }
    try {
      await this.commit(chain, checked, false)
    } catch (err) {
      if (!(err instanceof LedgerError)) throw err
      // store-failed is not the sender's fault: the block is asked for again with the next heads that show it.
      return this.reject(err.reason, err.message)
    }
    return { status: 'accepted', hash }
  }

  /** A block before the fork of its account that differs from the held one: a new, earlier fork. */
  private async compareExisting(chain: Chain, b: Block, hash: string): Promise<IngestOutcome> {
    if (!(await verifyBlockSignature(b))) return this.reject('bad-signature', `${b.account}#${b.seq}`)
    const proof = makeProof(chain.blocks[b.seq], b)
    try {
      await this.save({ kind: 'proof', proof }, 'a double-spend proof')
    } catch (err) {
      return this.reject((err as LedgerError).reason, (err as LedgerError).message)
    }
    this.recordProof(proof)
    // Now beyond the fork, and someone may have received it: kept like the rest of its branch.
    try {
      await this.save({ kind: 'block', block: b }, `a ${b.type} block`)
    } catch {
      // The proof stands without it; a receive that needs this block fetches its branch again.
      return { status: 'fork', proof }
    }
    this.holdBeyondFork(b, hash)
    return { status: 'fork', proof }
  }

  private async keepBeyondFork(b: Block, hash: string): Promise<IngestOutcome> {
    if (!(await verifyBlockSignature(b))) return this.reject('bad-signature', `${b.account}#${b.seq}`)
    try {
      await this.save({ kind: 'block', block: b }, `a ${b.type} block`)
    } catch (err) {
      return this.reject((err as LedgerError).reason, (err as LedgerError).message)
    }
    this.holdBeyondFork(b, hash)
    return { status: 'accepted', hash }
  }

  private holdBeyondFork(b: Block, hash: string): void {
    this.byHash.set(hash, b)
    const held = this.beyondFork.get(b.account)
    if (held == null) this.beyondFork.set(b.account, [b])
    else held.push(b)
  }

  private recordProof(proof: DoubleSpendProof): void {
    const account = proof.a.account
    this.proofs.set(proofId(proof), proof)
    if (proof.a.seq < this.forkSeq(account)) {
      this.flags.set(account, proof.a.seq)
      this.rederive()
    }
    this.emit('flagged', { account, proof })
  }

  /** Derives every account again from the held chains; a chain waits while a send it received is not derived yet. */
  private rederive(): void {
    let waiting = [...this.chains.values()]
    for (const c of waiting) c.resetDerived()
    const st = this.ctx()
    while (waiting.length > 0) waiting = waiting.filter(c => !c.derive(st))
  }

  /** Whether a held send moves credits: false for blocks held beyond a fork and for everything at or after it. */
  private moves(hash: string): boolean | undefined {
    const b = this.byHash.get(hash)
    const at = b && this.chains.get(b.account)?.seqOf(hash)
    if (b == null || at == null || at >= this.forkSeq(b.account)) return false
    return this.chains.get(b.account)!.movesAt(at)
  }

  private reject(reason: RejectReason, detail: string): IngestOutcome {
    this.emit('rejected', { reason, detail })
    return { status: 'rejected', reason, detail }
  }

  // ---- internals ----

  private get own(): Chain {
    return this.chainOf(this.id)
  }

  private chainOf(account: string): Chain {
    let c = this.chains.get(account)
    if (c == null) this.chains.set(account, (c = new Chain(account)))
    return c
  }

  private ctx(): VerifyContext {
    return {
      policy: this.policy,
      now: this.clock(),
      lookup: h => this.byHash.get(h),
      chain: a => this.chains.get(a),
      hasProof: id => this.proofs.has(id),
      forkSeq: a => this.forkSeq(a),
      moves: h => this.moves(h)
    }
  }

  /**
   * Signs and appends the next block of the own chain; the rules apply to it as to anyone's.
   * The required fee is added here; `fields.fee` is only the declared part of a 'fee' block.
   */
  private extend(fields: Partial<UnsignedBlock> & Pick<UnsignedBlock, 'type'>): Promise<Block> {
    return this.whenSigning(() => this.serial(() => this.signNext(fields)))
  }

  /** The registration grant, unless the own chain has one by then (brought back from peers). */
  private genesis(owner: string): Promise<Block | undefined> {
    return this.whenSigning(() => this.serial(async () => {
      if (this.own.claimed.seq >= 0) return undefined
      return await this.signNext({ type: 'genesis', amount: this.policy.grants.registration, memo: owner })
    }))
  }

  /** Runs `fn` now, or once signing is no longer held back (queued in call order either way). */
  private whenSigning<T>(fn: () => Promise<T>): Promise<T> {
    return this.held == null ? fn() : this.held.then(fn)
  }

  /** Whether own blocks wait for the mesh to confirm the own chain (LedgerOptions.signAfter). */
  get signingHeld(): boolean {
    return this.held != null
  }

  /** Signs and commits the next own block; runs in the queue. */
  private async signNext(fields: Partial<UnsignedBlock> & Pick<UnsignedBlock, 'type'>): Promise<Block> {
    const s = this.own.claimed
    const base: UnsignedBlock = {
      v: BLOCK_VERSION, account: this.id, seq: s.seq + 1, prev: s.head, amount: 0, counterparty: '', ref: ZERO_HASH, memo: '',
      ts: Math.max(this.clock(), s.lastTs), ...fields, fee: 0
    }
    const priced = { ...base, fee: (fields.fee ?? 0) + requiredFee(this.policy, base, s.seq < 0 ? undefined : s.lastTs) }
    const unsigned = base.type === 'genesis' ? mineGenesis(priced, this.policy.grants.registrationWorkBits) : priced
    const b = await signBlock(unsigned, this.key)
    await this.commit(this.own, await this.own.check(b, this.ctx(), 'self'), true)
    return b
  }

  /**
   * Writes a checked block, then applies it: a write that fails (storage full, a closed
   * database) leaves the ledger as it was, instead of a chain in memory that the store lacks a
   * block of, which would no longer replay after a restart.
   */
  private async commit(chain: Chain, checked: Checked, own: boolean): Promise<void> {
    const { block: b, hash } = checked
    await this.save({ kind: 'block', block: b }, `${b.account === this.id ? 'this agent\'s' : 'a'} ${b.type} block`)
    chain.commit(checked, this.ctx())
    this.byHash.set(hash, b)
    this.emit('block', { block: b, hash, own })
    // Queued behind the current operation, not awaited: awaiting from inside the queue would deadlock.
    if (this.autoReceive && !own && b.type === 'send' && b.counterparty === this.id) this.receiveLater(hash)
  }

  /** Appends to the store; a failure is LedgerError('store-failed'), a reason callers count, not a crash. */
  private async save(record: StoredRecord, what: string): Promise<void> {
    try {
      await this.store.append(record)
    } catch (err) {
      // The store's own message says what to do about a second writer; only a full disk calls for space.
      const full = (err as any)?.code === 'ENOSPC' || (err as any)?.name === 'QuotaExceededError'
      throw new LedgerError('store-failed', `could not save ${what} (${(err as Error)?.message ?? err}); nothing changed.${full ? ' Free some storage and try again.' : ''}`)
    }
  }

  private receiveLater(sendHash: string): void {
    void this.receive(sendHash).catch(err => this.emit('rejected', { reason: err.reason ?? 'malformed', detail: String(err.message) }))
  }

  /** Held sends to this agent that move credit and that the own chain has not received. */
  private owedToSelf(): string[] {
    const out: string[] = []
    for (const c of this.chains.values()) {
      if (c === this.own) continue
      for (const [i, b] of c.blocks.entries()) {
        if (b.type === 'send' && b.counterparty === this.id && this.moves(c.hashes[i]) === true && !this.own.credits(c.hashes[i])) out.push(c.hashes[i])
      }
    }
    return out
  }

  /** Resolves once every queued operation, including automatic receives, has finished. */
  async idle(): Promise<void> {
    let seen: Promise<unknown>
    do {
      seen = this.queue
      await seen
    } while (seen !== this.queue)
  }

  /** Finishes queued work and closes the store. */
  async close(): Promise<void> {
    await this.idle()
    await this.store.close()
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  private emit<K extends keyof LedgerEvents>(event: K, e: LedgerEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) fn(e)
  }
}
