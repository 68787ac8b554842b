// The ledger as a service of the agent: it keeps the chains (ledger/), gossips heads and
// double-spend proofs on the ledger topic, serves and fetches block ranges over streams,
// hands every own send straight to its payee so the payee acknowledges it at once, and claims
// the failsafe grants the own chain is eligible for. Everything from outside is verified by
// the ledger before it counts; what is refused is counted by reason for the credits view.
import { hashBlock, LedgerError, type Block } from '../../ledger/block.ts'
import { Ledger } from '../../ledger/ledger.ts'
import { proofId, type DoubleSpendProof } from '../../ledger/doublespend.ts'
import { DEFAULT_POLICY, type Policy } from '../../ledger/policy.ts'
import { Reputation, signRating } from '../../ledger/reputation.ts'
import { checkSyncBody, creditTransfer, LedgerSync, MAX_GOSSIP_BYTES, MAX_RANGE, MAX_STREAM_BYTES, SYNC_TYPES, type SyncMessage, type SyncResult } from '../../ledger/sync.ts'
import type { LedgerStore } from '../../ledger/store-types.ts'
import { registerMessageType } from '../../protocol/messages.ts'
import type { Envelope } from '../../protocol/envelope.ts'
import type { AgentContext, AgentService } from '../service.ts'
import { ask, frameType, LEDGER_PROTOCOL, LEDGER_TOPIC, serve, type BlocksReply, type Request } from './ledger-wire.ts'
import { overLink } from '../../mesh/dialer.ts'
import { QuietBackoff } from './quiet-backoff.ts'
import type { Connection } from '@libp2p/interface'
import { historyOf, type Flow, type LedgerRejection, type LedgerView } from './ledger-view.ts'
import { claimMentorBonuses } from './mentor.ts'
import { OwnChainCheck, type OwnChainStatus } from './own-chain.ts'

for (const type of SYNC_TYPES) registerMessageType(type, body => checkSyncBody(type, body))

export interface LedgerServiceOptions {
  openStore: () => Promise<LedgerStore>
  /** owner_id for the genesis block of a new chain. */
  owner?: string
  policy?: Policy
  /** How often a rotating slice of all known heads is gossiped while the ledger moves (backing off when it does not). */
  headsEveryMs?: number
  /** How often the failsafe grants are checked. */
  failsafesEveryMs?: number
  /**
   * The agent's key is not new, so the mesh may hold more of its chain than its store does:
   * nothing is signed until peers were asked for it (see own-chain.ts).
   */
  confirmOwnChain?: boolean
}

export interface TransferOutcome {
  block: Block
  hash: string
  /** The payee's receive came back: the transfer carries both signatures. */
  acknowledged: boolean
  receive?: Block
  /** Why it was not acknowledged yet (the payee will still pick the send up by sync). */
  reason?: string
}

/** Own heads at most this often: a burst of transfers must not flood gossip (nor the receivers' rate limits). */
const HEAD_MIN_GAP_MS = 1000
const MAX_FLOWS = 50
const MAX_RECENT = 50
const MAX_DELIVERIES = 256
const MAX_FETCH_ROUNDS = 64
const DIAL_TIMEOUT_MS = 15_000
/**
 * A quiet mesh gossips its heads up to this many times less often: every agent's periodic heads
 * were about 40% of an idle agent's CPU in a mesh of ten, and that share grows with the mesh.
 */
const QUIET_HEADS_BACKOFF = 16

export class LedgerService implements AgentService {
  readonly name = 'ledger'
  private ctx?: AgentContext
  private l?: Ledger
  private s?: LedgerSync
  private rep?: Reputation
  private readonly refused: Record<string, number> = {}
  private readonly recent: LedgerRejection[] = []
  private readonly flows: Flow[] = []
  private readonly acked = new Set<string>()
  private readonly deliveries = new Map<string, Promise<TransferOutcome>>()
  private readonly inflight = new Map<string, Promise<Request[]>>()
  private readonly timers: Array<ReturnType<typeof setTimeout>> = []
  private headTimer?: ReturnType<typeof setTimeout>
  private lastHead = 0
  private heads?: QuietBackoff
  private changeTimer?: ReturnType<typeof setTimeout>
  private ownChain?: OwnChainCheck
  private stopped = false

  constructor (private readonly opts: LedgerServiceOptions) {}

  get ledger (): Ledger {
    if (this.l == null) throw new Error('the ledger service has not started')
    return this.l
  }

  get sync (): LedgerSync {
    if (this.s == null) throw new Error('the ledger service has not started')
    return this.s
  }

  get reputation (): Reputation {
    if (this.rep == null) throw new Error('the ledger service has not started')
    return this.rep
  }

  async start (ctx: AgentContext): Promise<void> {
    this.ctx = ctx
    let confirmed: (() => void) | undefined
    const signAfter = this.opts.confirmOwnChain === true ? new Promise<void>(resolve => { confirmed = resolve }) : undefined
    // Opening writes the registration grant (genesis) on an agent's first start.
    this.l = await Ledger.open(await this.opts.openStore(), ctx.signer.privateKey, { policy: this.opts.policy ?? DEFAULT_POLICY, owner: this.opts.owner ?? '', signAfter })
    this.s = new LedgerSync(this.l)
    // The agent trusts itself first; trust reaches others through the ratings it signs.
    this.rep = new Reputation([ctx.id])
    for (const a of this.l.accounts()) for (const b of this.l.blocks(a.account)) this.remember(b)
    this.l.on('block', e => { this.onBlock(e.block, e.hash, e.own) })
    this.l.on('flagged', () => { this.changedSoon() })
    ctx.subscribe(LEDGER_TOPIC, async env => { await this.onGossip(env) }, MAX_GOSSIP_BYTES)
    await ctx.handle(LEDGER_PROTOCOL, async (stream, conn) => {
      await serve(stream, async bytes => await this.answer(bytes, conn.remotePeer.toString()))
    })
    // Gossip's first messages are often lost while the mesh forms: say where we are early and often.
    for (const ms of [500, 1500, 3000]) this.later(ms, () => { void this.gossip(this.sync.someHeads()) })
    // Periodic work rides the agent's heartbeat, which keeps ticking in hidden tabs.
    const headsEveryMs = this.opts.headsEveryMs ?? 4000
    const heads = this.heads = new QuietBackoff(headsEveryMs, QUIET_HEADS_BACKOFF)
    ctx.every(headsEveryMs, async () => { if (heads.take()) await this.gossip(this.sync.someHeads()) })
    // A newcomer may lack every chain we hold.
    ctx.onNewPeer(() => { heads.reset() })
    this.later(2000, () => { void this.failsafes() })
    ctx.every(this.opts.failsafesEveryMs ?? 60_000, async () => { await this.failsafes() })
    if (confirmed != null) {
      this.ownChain = new OwnChainCheck({
        peers: () => ctx.peers().filter(p => p.incompatible == null).map(p => p.id),
        onNewPeer: listener => { ctx.onNewPeer(listener) },
        catchUp: async peer => { await this.catchUpOwn(peer) },
        later: (ms, fn) => { this.later(ms, fn) }
      })
      void this.ownChain.done.then(() => { confirmed!(); this.changedSoon() })
    }
  }

  /** Takes in whatever of the own chain a peer holds beyond our head; throws when it did not answer. */
  private async catchUpOwn (peer: string): Promise<void> {
    const self = this.ledger.id
    const from = this.ledger.fetchFrom(self)
    const r = await this.absorb(await this.ask(peer, { type: 'ledger.request', account: self, from, to: from + MAX_RANGE - 1 }), peer, false)
    await this.fetch(peer, r.requests)
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const t of this.timers) clearTimeout(t)
    clearTimeout(this.headTimer)
    clearTimeout(this.changeTimer)
    await this.l?.close()
  }

  // ---- what the UI and the API call ----

  /** credit.transfer: signs the send and hands it to the payee; rejects (LedgerError) an overspend and other invalid sends. */
  async transfer (to: string, amount: number, reason = ''): Promise<TransferOutcome> {
    const block = await this.ledger.transfer(to, amount, reason)
    return await this.delivered(hashBlock(block))
  }

  /** The outcome of handing an own send to its payee (started when the send was made). */
  async delivered (sendHash: string): Promise<TransferOutcome> {
    const d = this.deliveries.get(sendHash)
    if (d != null) return await d
    const block = this.ledger.block(sendHash)
    if (block == null || block.type !== 'send' || block.account !== this.ledger.id) throw new LedgerError('unknown-ref', `no own send ${sendHash}`)
    return await this.deliver(block)
  }

  /** Offers a send block to its payee as the draft's credit.transfer and takes its receive back. */
  async deliver (send: Block): Promise<TransferOutcome> {
    const ctx = this.context
    const hash = hashBlock(send)
    try {
      const { type, ...body } = creditTransfer(send)
      const env = await ctx.sign(type, body, send.counterparty)
      const bytes = await this.ask(send.counterparty, env)
      const r = await this.absorb(bytes, send.counterparty, false)
      // The receive extends the payee's chain. A payer behind on that chain (a newcomer still
      // syncing, heads not yet arrived) must fetch what precedes it, or a receive the payee did
      // sign would be dropped as a gap and the transfer reported unacknowledged.
      if (r.requests.length > 0) await this.fetch(send.counterparty, r.requests)
      const receive = this.receiptOf(send)
      const reason = readReason(bytes) ?? r.rejected[0]?.reason ?? 'no acknowledgement'
      return { block: send, hash, acknowledged: receive != null, receive, reason: receive == null ? reason : undefined }
    } catch (err) {
      // Not every failure is an Error with a message (a stream reset can throw other things).
      return { block: send, hash, acknowledged: false, reason: (err as Error)?.message || String(err) }
    }
  }

  view (): LedgerView {
    const l = this.ledger
    const scores = this.reputation.scores()
    const sync = this.sync.counters as Record<string, number>
    return {
      id: l.id,
      self: l.account()!,
      accounts: l.accounts().filter(a => a.seq >= 0).map(a => ({ ...a, flagged: l.isFlagged(a.account), reputation: scores.get(a.account) ?? 0 })),
      history: historyOf(l, this.acked),
      series: l.history(),
      flows: this.flows.slice(),
      flagged: l.accounts().filter(a => l.isFlagged(a.account)).map(a => a.account),
      counters: { ...sync, ...Object.fromEntries(Object.entries(this.refused).map(([k, n]) => [k, n + (sync[k] ?? 0)])) },
      recent: this.recent.slice(),
      audit: l.audit(),
      ownChain: { ...(this.ownChain?.status ?? { state: 'new', answered: 0 }) }
    }
  }

  // ---- incoming ----

  private async onGossip (env: Envelope): Promise<void> {
    // The topic carries only ledger.heads and ledger.proof (the inbox refuses other types).
    await this.absorb({ ...(env.body as object), type: env.type }, env.from)
  }

  /** The answering side of the stream protocol. */
  private async answer (bytes: Uint8Array, remote: string): Promise<BlocksReply> {
    const type = frameType(bytes)
    if (type === 'credit.transfer') return await this.onTransfer(bytes, remote)
    if (type !== 'ledger.request') return this.refuse('malformed', `${String(type)} is not a request`, remote)
    const r = await this.sync.handle(bytes, MAX_STREAM_BYTES)
    this.note(r, remote)
    return r.reply?.type === 'ledger.blocks' ? r.reply : { type: 'ledger.blocks', blocks: [], reason: r.rejected[0]?.reason }
  }

  /** The payee's side of a transfer: verify, receive, and return the receive block. */
  private async onTransfer (bytes: Uint8Array, remote: string): Promise<BlocksReply> {
    const ctx = this.context
    const env = await ctx.inbox.accept(bytes, { transportFrom: remote, senderMustMatch: true, maxBytes: MAX_STREAM_BYTES })
    if (env == null) return { type: 'ledger.blocks', blocks: [], reason: 'envelope rejected' }
    const body = env.body as Extract<SyncMessage, { type: 'credit.transfer' }>
    if (env.to !== ctx.id || body.block.counterparty !== ctx.id) return this.refuse('malformed', 'transfer not addressed to this agent', remote)
    if (body.block.account !== env.from) return this.refuse('malformed', 'transfer of someone else\'s send', remote)
    // Fetch what precedes the send from the payer first, so it links instead of counting as a gap.
    const known = this.ledger.account(body.block.account)?.seq ?? -1
    if (Number.isSafeInteger(body.block.seq) && body.block.seq - 1 > known) {
      await this.fetch(remote, [{ type: 'ledger.request', account: body.block.account, from: known + 1, to: Math.min(body.block.seq - 1, known + 256) }])
    }
    const r = await this.absorb({ ...body, type: 'credit.transfer' }, remote)
    await this.ledger.idle()
    const receive = this.receiptOf(body.block)
    return { type: 'ledger.blocks', blocks: receive != null ? [receive] : [], reason: receive == null ? r.rejected[0]?.reason ?? 'not received' : undefined }
  }

  /** Runs one message through sync, then acts on what it asks for: gossip, fetches, monitoring grants. */
  private async absorb (input: Uint8Array | object, peer: string, fetch = true): Promise<SyncResult> {
    const r = await this.sync.handle(input, input instanceof Uint8Array ? MAX_STREAM_BYTES : MAX_GOSSIP_BYTES)
    this.note(r, peer)
    for (const g of r.gossip) void this.gossip(g)
    if (r.rejected.some(x => x.reason === 'double-spend')) {
      // This agent found the fork itself: the draft's passive income for monitoring.
      for (const g of r.gossip) if (g.type === 'ledger.proof') void this.claimMonitoring(g.proof)
    }
    if (fetch && r.requests.length > 0) void this.fetch(peer, r.requests)
    if (r.senderBehind === true) this.heads?.reset()
    if (r.accepted > 0) this.changedSoon()
    return r
  }

  /**
   * Pulls ranges from one peer until it has nothing more that we lack. A range already being
   * pulled is waited for, not asked again: a payee that fetches what precedes a send must not go
   * on before it arrived because heads had set off the same fetch a moment earlier.
   */
  private async fetch (peer: string, requests: Request[]): Promise<void> {
    let queue = requests
    for (let round = 0; round < MAX_FETCH_ROUNDS && queue.length > 0; round++) {
      const next: Request[] = []
      for (const req of queue) {
        const key = `${peer}/${req.account}/${req.from}/${req.to}`
        const running = this.inflight.get(key)
        if (running != null) {
          // Whoever started it follows up on what it brings.
          await running
          continue
        }
        const pull = this.pull(peer, req).finally(() => { this.inflight.delete(key) })
        this.inflight.set(key, pull)
        next.push(...await pull)
      }
      queue = next
    }
  }

  /** One range from one peer; what it asks for next. */
  private async pull (peer: string, req: Request): Promise<Request[]> {
    try {
      return (await this.absorb(await this.ask(peer, req), peer, false)).requests
    } catch {
      // Unreachable or slow: the next heads from anyone who holds the chain bring it.
      return []
    }
  }

  // ---- outgoing ----

  private onBlock (b: Block, hash: string, own: boolean): void {
    this.remember(b)
    this.heads?.reset()
    if (own) {
      this.headSoon()
      if (b.type === 'send') this.track(hash, this.deliver(b))
    }
    this.changedSoon()
  }

  private track (hash: string, delivery: Promise<TransferOutcome>): void {
    this.deliveries.set(hash, delivery)
    if (this.deliveries.size > MAX_DELIVERIES) this.deliveries.delete(this.deliveries.keys().next().value!)
    void delivery.then(d => {
      // A payee that acknowledged at once earns a little of this agent's trust.
      if (d.acknowledged) void this.rate(d.block.counterparty, hash)
    })
  }

  private async rate (peer: string, ref: string): Promise<void> {
    await this.reputation.addRating(await signRating({ rater: this.ledger.id, ratee: peer, score: 1, ref, ts: Date.now() }, this.context.signer.privateKey))
  }

  private headSoon (): void {
    if (this.headTimer != null) return
    this.headTimer = setTimeout(() => {
      this.headTimer = undefined
      this.lastHead = Date.now()
      void this.gossip(this.sync.ownHead())
    }, Math.max(0, this.lastHead + HEAD_MIN_GAP_MS - Date.now()))
  }

  /**
   * One round trip to a peer. Any open connection serves ledger traffic, which is small; a dial
   * (which holds out for a direct WebRTC link, address by address) happens only when there is
   * none or the one we had turns out dead, and is bounded.
   */
  private async ask (peer: string, message: Request | Envelope): Promise<Uint8Array> {
    const dial = async (): Promise<Connection> => await Promise.race([
      this.context.connect(peer),
      new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error(`cannot reach ${peer} in time`)) }, DIAL_TIMEOUT_MS))
    ])
    // A connection can look open after its other end went away: the next one, or a fresh dial, is tried.
    return await overLink(this.context.node, peer, dial, async conn => await ask(conn, message))
  }

  private async gossip (m: SyncMessage): Promise<void> {
    const { type, ...body } = m
    if (this.stopped || (type === 'ledger.heads' && m.heads.length === 0)) return
    await this.context.publish(LEDGER_TOPIC, type, body).catch(() => {})
  }

  private async failsafes (): Promise<void> {
    if (this.stopped) return
    try {
      await this.ledger.claimFailsafes()
      await claimMentorBonuses(this.ledger)
      // A task nobody settled within the policy's timeout gives its reservation back.
      await this.ledger.expireTasks()
    } catch (err) {
      this.remark('failsafe', (err as Error).message)
    }
  }

  private async claimMonitoring (proof: DoubleSpendProof): Promise<void> {
    await this.ledger.claimGrant('monitoring', { ref: proofId(proof) }).catch(err => {
      // The daily cap or an earlier claim of this proof: nothing is owed.
      if ((err as LedgerError).reason !== 'bad-grant') this.remark('monitoring', (err as Error).message)
    })
  }

  // ---- bookkeeping ----

  private remember (b: Block): void {
    if (b.type === 'receive') {
      this.acked.add(b.ref)
      const f = this.flows.find(x => x.hash === b.ref)
      if (f != null) f.acknowledged = true
    }
    if (b.type === 'send') {
      const hash = hashBlock(b)
      this.flows.push({ hash, from: b.account, to: b.counterparty, amount: b.amount, memo: b.memo, ts: b.ts, acknowledged: this.acked.has(hash) })
      this.flows.sort((x, y) => x.ts - y.ts)
      if (this.flows.length > MAX_FLOWS) this.flows.splice(0, this.flows.length - MAX_FLOWS)
    }
  }

  private receiptOf (send: Block): Block | undefined {
    const hash = hashBlock(send)
    return this.acked.has(hash) ? this.ledger.blocks(send.counterparty).findLast(b => b.type === 'receive' && b.ref === hash) : undefined
  }

  private note (r: SyncResult, from: string): void {
    for (const x of r.rejected) this.remark(x.reason, x.detail, from)
  }

  private refuse (reason: string, detail: string, from: string): BlocksReply {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1
    this.remark(reason, detail, from)
    return { type: 'ledger.blocks', blocks: [], reason }
  }

  private remark (reason: string, detail: string, from?: string): void {
    this.recent.push({ reason, detail, from, at: Date.now() })
    if (this.recent.length > MAX_RECENT) this.recent.shift()
    this.changedSoon()
  }

  /** Bursts of blocks become one UI refresh. */
  private changedSoon (): void {
    if (this.changeTimer != null) return
    this.changeTimer = setTimeout(() => {
      this.changeTimer = undefined
      this.ctx?.changed()
    }, 100)
  }

  private later (ms: number, fn: () => void): void {
    this.timers.push(setTimeout(fn, ms))
  }

  private get context (): AgentContext {
    if (this.ctx == null) throw new Error('the ledger service has not started')
    return this.ctx
  }
}

function readReason (bytes: Uint8Array): string | undefined {
  try {
    const r = JSON.parse(new TextDecoder().decode(bytes))?.reason
    return typeof r === 'string' ? r : undefined
  } catch {
    return undefined
  }
}
