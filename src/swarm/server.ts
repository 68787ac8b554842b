import type { Connection, Stream } from '@libp2p/interface'
import type { BlockRange, KvCache } from '../engine/stages.ts'
import type { LlamaConfig } from '../model/config.ts'
import { decodeTensor, encodeTensor, WIRE_DTYPES, type WireDType } from './tensor-codec.ts'
import type { Link } from '../mesh/dialer.ts'
import { SessionFailure, sessionFrames, type PushStep, type SessionReply, type SessionRequest } from './session-wire.ts'
import { PUSH_PROTOCOL } from './messages.ts'
import { UNSIGNED_TOKENS_ALLOWED, type HostMeter, type HostPayments, type WorkReceipt } from './payments.ts'
import { closeStream, openStream } from '../mesh/frames.ts'
import { withDeadline } from '../mesh/deadline.ts'

export interface HostedRange {
  /** Manifest id of the model. */
  model: string
  name: string
  config: LlamaConfig
  range: BlockRange
  /** Where the weights came from, announced so others can load the same file. */
  url?: string
}

export interface ServerOptions {
  /** Memory the KV caches of all sessions together may take. */
  cacheBudgetBytes: number
  /** A session with no step for this long is closed and its cache freed. */
  idleMs?: number
  /** Charge clients for their sessions; without it this host serves for free. */
  payments?: HostPayments
  /** Links to other agents, to push outputs on to the next hop; without it this host does not push. */
  link?: Link
}

type Frames = ReturnType<typeof sessionFrames>
type StepRequest = Extract<SessionRequest, { type: 'step' }>

interface Session {
  id: number
  client: string
  cache: KvCache
  maxLength: number
  lastActive: number
  tokens: number
  dtype: WireDType
  /** What the previous hop names to push into this session (given only to the client). */
  pushId: string
  meter?: HostMeter
  /** The next hop's session, where forwarded outputs go. */
  next?: { peer: string, stream: Stream, frames: Frames }
  /** Push streams feeding this session, closed with it. */
  inbound: Set<Stream>
  /** Steps and replies one at a time, whichever stream brought them. */
  queue: Promise<unknown>
  /** The forward pass running on this session's cache, if any (settles, never rejects). */
  forwarding: Promise<unknown>
  reply: (r: SessionReply, tensor?: Uint8Array) => Promise<void>
  /** Ends the session from outside its own stream's loop (a pushed step it must refuse). */
  end: () => void
  /** Resets the client's stream, for a session that is already gone. */
  abort: () => void
  /** Pushed steps waiting for the client's receipt of the step before. */
  receiptWaiters: Array<() => void>
}

export interface ServedStats {
  sessions: number
  capacityTokens: number
  freeCacheTokens: number
  msPerTokenLayer: number
  /** Tokens × blocks served, per client: what receipts are made of. */
  servedByClient: Record<string, { tokens: number, blockTokens: number }>
  /** Pushed steps dropped: for no session here, malformed, or at a position already served. */
  pushesDropped: number
}

/**
 * Serves one hosted block range to many clients: each stream is one session with its own KV
 * cache over the shared weights, fed by its client and by the previous hop's pushes. Forward
 * calls are serialised (one ONNX session); everything is driven by stream events, so a hidden
 * tab keeps serving without timers (the one timer, a bound on waiting for a receipt, only ends a wait).
 */
export class ShardServer {
  private readonly sessions = new Map<number, Session>()
  private readonly byPush = new Map<string, Session>()
  private nextId = 1
  private pushesDropped = 0
  private queue: Promise<unknown> = Promise.resolve()
  private msPerTokenLayer: number
  private readonly served: ServedStats['servedByClient'] = {}
  readonly blocks: number

  constructor (readonly hosted: HostedRange, private readonly opts: ServerOptions, measuredMsPerTokenLayer: number) {
    this.blocks = hosted.range.last - hosted.range.first + 1
    this.msPerTokenLayer = measuredMsPerTokenLayer
  }

  private bytesPerToken (): number {
    const c = this.hosted.config
    return 2 * this.blocks * c.nKvHeads * c.headDim * 4
  }

  private reservedTokens (): number {
    let n = 0
    for (const s of this.sessions.values()) n += s.maxLength
    return n
  }

  stats (): ServedStats {
    const capacityTokens = Math.floor(this.opts.cacheBudgetBytes / this.bytesPerToken())
    return {
      sessions: this.sessions.size,
      capacityTokens,
      freeCacheTokens: Math.max(0, capacityTokens - this.reservedTokens()),
      msPerTokenLayer: this.msPerTokenLayer,
      servedByClient: structuredClone(this.served),
      pushesDropped: this.pushesDropped
    }
  }

  /** Closes sessions idle for too long (a client that vanished without closing its stream). */
  reapIdle (now = Date.now()): number {
    let n = 0
    for (const s of this.sessions.values()) {
      if (now - s.lastActive > (this.opts.idleMs ?? 60_000)) {
        this.drop(s)
        // Its stream may be stuck on a reply the client never reads, or alive on frames that are
        // not steps: left open, it would serve on without a session. Nothing on it is worth flushing.
        s.abort()
        n++
      }
    }
    return n
  }

  private drop (s: Session): void {
    if (!this.sessions.has(s.id)) return
    this.sessions.delete(s.id)
    this.byPush.delete(s.pushId)
    s.next?.stream.abort(new Error('session closed'))
    for (const stream of s.inbound) stream.abort(new Error('session closed'))
    for (const wake of s.receiptWaiters.splice(0)) wake()
    // A pushed step may be computing on this cache when the client goes away. Only that forward
    // is waited for (steps not yet started find the session gone): a step stuck replying to a
    // client that stopped reading must not keep the memory after its reservation is released.
    void s.forwarding.then(() => { s.cache.dispose() })
  }

  private async run<T> (fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn)
    this.queue = next.catch(() => {})
    return await next
  }

  /** Serves one session on `stream`; `free` for this agent's own generations (nobody pays itself). */
  async handle (stream: Stream, conn: Pick<Connection, 'remotePeer'>, opts: { free?: boolean } = {}): Promise<void> {
    const frames = sessionFrames(stream)
    const client = conn.remotePeer.toString()
    let session: Session | undefined
    try {
      const open = await frames.readJson(AbortSignal.timeout(15_000)) as SessionRequest
      const refusal = this.checkOpen(open)
      if (refusal != null) {
        await frames.write(refusal)
        return
      }
      const o = open as Extract<SessionRequest, { type: 'open' }>
      // Our own id for the payment session, so no client can make two sessions share one account of what was paid.
      const paySession = this.opts.payments != null && opts.free !== true ? randomId() : undefined
      const s: Session = {
        id: this.nextId++, client, cache: this.hosted.range.newCache(), maxLength: o.maxLength, lastActive: Date.now(), tokens: 0, dtype: o.dtype,
        pushId: randomId(), meter: paySession != null ? this.opts.payments!.meter(client, paySession) : undefined,
        inbound: new Set(), queue: Promise.resolve(), forwarding: Promise.resolve(), receiptWaiters: [],
        reply: async (r, tensor) => { await (tensor != null ? frames.writeWithBytes(r, tensor) : frames.write(r)) },
        end: () => { this.drop(s); void closeStream(stream, 'session ended') },
        abort: () => { stream.abort(new Error('session closed')) }
      }
      session = s
      this.sessions.set(s.id, s)
      this.byPush.set(s.pushId, s)
      await frames.write({ ok: true, session: paySession, push: s.pushId } satisfies SessionReply)
      for (;;) {
        const req = await this.nextRequest(s, frames)
        // Ended from outside (a refused push, the reaper): nothing more is served on this stream.
        if (!this.sessions.has(s.id)) return
        if (req?.type === 'close') return
        if (req?.type === 'receipt' && s.meter != null) {
          if (!(await this.acceptReceipt(s, req.receipt))) return
          continue
        }
        if (req?.type === 'next') {
          await this.serial(s, async () => { await this.link(s, req) })
          continue
        }
        if (req?.type !== 'step' || !validStep(req)) {
          await s.reply({ ok: false, error: 'bad-request', detail: 'expected {"type":"step","position":P,"tokens":N} followed by a tensor frame' })
          return
        }
        const bytes = await withDeadline(30_000, async signal => await frames.readBytes(signal))
        if (!(await this.serial(s, async () => await this.step(s, req, bytes, 'client')))) return
      }
    } catch (err: any) {
      if (!(err instanceof SessionFailure) && stream.status === 'open') {
        const reply: SessionReply = malformed(err)
          ? { ok: false, error: 'bad-request', detail: `unreadable frame: ${String(err?.message ?? err)}` }
          : { ok: false, error: 'internal', detail: String(err?.message ?? err) }
        await frames.write(reply).catch(() => {})
      }
    } finally {
      session?.meter?.close()
      if (session != null) this.drop(session)
      await closeStream(stream, 'session closed')
    }
  }

  /**
   * The client's next frame. A hop past the first of a pushing chain hears from its client only
   * at receipts and the close, so the session is idle when no step, whoever sent it, came for
   * `idleMs`, not when the client was quiet. The read is never abandoned halfway through a frame.
   */
  private async nextRequest (s: Session, frames: Frames): Promise<SessionRequest> {
    const idleMs = this.opts.idleMs ?? 60_000
    const read = frames.readJson()
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined
      const idle = new Promise<typeof IDLE>(resolve => { timer = setTimeout(() => { resolve(IDLE) }, Math.max(0, s.lastActive + idleMs - Date.now())) })
      try {
        const got = await Promise.race([read, idle])
        if (got !== IDLE) return got
      } finally {
        clearTimeout(timer)
      }
      if (Date.now() - s.lastActive >= idleMs) {
        read.catch(() => {})
        throw new Error(`no step for ${idleMs} ms: session closed`)
      }
    }
  }

  /**
   * Steps pushed by the previous hop of a client's chain into one of our sessions: run exactly
   * as if the client had sent them, the output going back to the client (its record for
   * failover) and on to our own next hop. Anything that does not fit is dropped and counted.
   */
  async handlePush (stream: Stream): Promise<void> {
    const frames = sessionFrames(stream)
    let s: Session | undefined
    try {
      const hello = await frames.readJson(AbortSignal.timeout(10_000))
      s = typeof hello?.push === 'string' ? this.byPush.get(hello.push) : undefined
      if (s == null) {
        this.pushesDropped++
        return
      }
      s.inbound.add(stream)
      for (;;) {
        // No deadline: the stream lives as long as the two sessions it joins.
        const step = await frames.readJson() as PushStep
        const bytes = await withDeadline(30_000, async signal => await frames.readBytes(signal))
        if (!validStep(step) || !this.sessions.has(s.id)) {
          this.pushesDropped++
          return
        }
        const session = s
        if (!(await this.serial(session, async () => await this.step(session, { type: 'step', ...step, forward: true }, bytes, 'push')))) {
          session.end()
          return
        }
      }
    } catch (err) {
      // The pushing host went away or its session ended; the client hears of it on its own stream.
      if (malformed(err)) this.pushesDropped++
    } finally {
      s?.inbound.delete(stream)
      await closeStream(stream, 'push closed')
    }
  }

  private async serial<T> (s: Session, fn: () => Promise<T>): Promise<T> {
    const next = s.queue.then(fn, fn)
    s.queue = next.catch(() => {})
    return await next
  }

  private async acceptReceipt (s: Session, r: WorkReceipt | undefined): Promise<boolean> {
    if (r?.model !== this.hosted.model || r.layers !== this.blocks || !(await s.meter!.accept(r))) {
      await s.reply({ ok: false, error: 'bad-request', detail: 'the receipt is not a newer one signed by this client for this session, model and block range' })
      return false
    }
    for (const wake of s.receiptWaiters.splice(0)) wake()
    return true
  }

  /** Points this session's forwarded outputs at the next hop's session (or nowhere); a failure to reach it is not fatal. */
  private async link (s: Session, req: Extract<SessionRequest, { type: 'next' }>): Promise<void> {
    s.next?.stream.abort(new Error('relinked'))
    s.next = undefined
    if (req.peer == null) {
      await s.reply({ ok: true })
      return
    }
    if (typeof req.peer !== 'string' || typeof req.push !== 'string' || req.push.length > 64) {
      await s.reply({ ok: false, error: 'bad-request', detail: 'expected {"type":"next","peer":ID,"push":SESSION}' })
      return
    }
    if (this.opts.link == null) {
      await s.reply({ ok: false, error: 'unreachable', detail: 'this host does not push to other hosts' })
      return
    }
    try {
      const peer = req.peer
      s.next = await this.opts.link(peer, async conn => {
        const stream = await openStream(conn, PUSH_PROTOCOL, AbortSignal.timeout(10_000))
        const frames = sessionFrames(stream)
        await frames.write({ push: req.push })
        return { peer, stream, frames }
      })
      // The session ended while we dialled: nothing would ever close this stream.
      if (!this.sessions.has(s.id)) {
        s.next.stream.abort(new Error('session closed'))
        s.next = undefined
        return
      }
      await s.reply({ ok: true })
    } catch (err: any) {
      await s.reply({ ok: false, error: 'unreachable', detail: `cannot push to ${req.peer}: ${err?.message ?? err}` })
    }
  }

  /** Runs one step of a session; false when the session must end (the refusal has been sent). */
  private async step (s: Session, req: StepRequest, bytes: Uint8Array, source: 'client' | 'push'): Promise<boolean> {
    if (!this.sessions.has(s.id)) return false
    if (s.meter != null) {
      const mustBeSigned = Math.max(0, s.tokens - UNSIGNED_TOKENS_ALLOWED) * this.blocks
      let refusal = paymentRefusal(s.meter, mustBeSigned)
      // A pushed step can overtake a receipt the client is sending on its own stream.
      if (refusal != null && source === 'push' && !s.meter.mustPause) {
        await new Promise<void>(resolve => {
          const t = setTimeout(resolve, RECEIPT_WAIT_MS)
          s.receiptWaiters.push(() => { clearTimeout(t); resolve() })
        })
        refusal = paymentRefusal(s.meter, mustBeSigned)
      }
      if (refusal != null) {
        await s.reply(refusal)
        return false
      }
    }
    // A client replaying history after a failover starts again at 0 on a fresh session;
    // anything else out of order is a client bug, and we say so rather than guess. A pushed
    // step the client already sent itself (it went around a slow hop) is simply not needed.
    if (req.position !== s.cache.position) {
      if (source === 'push') {
        this.pushesDropped++
        return true
      }
      await s.reply({ ok: false, error: 'position', detail: `step at position ${req.position}, but this session holds ${s.cache.position} tokens` })
      return false
    }
    if (req.position + req.tokens > s.maxLength) {
      await s.reply({ ok: false, error: 'context-full', detail: `${req.position} + ${req.tokens} tokens exceeds the session's maximum length of ${s.maxLength}` })
      return false
    }
    const dtype = req.dtype ?? s.dtype
    const dim = this.hosted.config.dim
    let hidden: Float32Array
    try {
      if (!WIRE_DTYPES.includes(dtype)) throw new Error(`dtype must be one of ${WIRE_DTYPES.join(', ')}`)
      hidden = decodeTensor(bytes, dtype, req.tokens, dim)
    } catch (err: any) {
      // Bad bytes from the previous hop are not the client's: its session goes on without them.
      if (source === 'push') {
        this.pushesDropped++
        return true
      }
      await s.reply({ ok: false, error: 'bad-request', detail: err.message })
      return false
    }
    const t0 = performance.now()
    let out: Float32Array | undefined
    try {
      // The session may have ended while this step waited for its turn; its cache is then not ours to touch.
      out = await this.run(async () => {
        if (!this.sessions.has(s.id)) return undefined
        const forward = this.hosted.range.forward(hidden, req.tokens, s.cache)
        s.forwarding = forward.catch(() => {})
        return await forward
      })
    } catch (err: any) {
      // The cache may hold part of this step, so the session cannot go on; its client (waiting
      // for a pushed step's output, perhaps) must hear why rather than wait out a deadline.
      await s.reply({ ok: false, error: 'internal', detail: `the forward pass failed: ${String(err?.message ?? err)}` })
      return false
    }
    if (out == null) return false
    const computeMs = performance.now() - t0
    if (req.tokens === 1) this.msPerTokenLayer = 0.8 * this.msPerTokenLayer + 0.2 * (computeMs / this.blocks)
    s.lastActive = Date.now()
    s.tokens += req.tokens
    const tally = this.served[s.client] ??= { tokens: 0, blockTokens: 0 }
    tally.tokens += req.tokens
    tally.blockTokens += req.tokens * this.blocks
    const tensor = encodeTensor(out, dtype, dim)
    // The next hop first: the client's copy is off the critical path.
    const pushed = req.forward === true ? await this.pushOn(s, { position: req.position, tokens: req.tokens, dtype }, tensor) : undefined
    await s.reply({ ok: true, tokens: req.tokens, computeMs: Math.round(computeMs * 100) / 100, settle: s.meter?.wantsSettlement === true ? true : undefined, pushed }, tensor)
    return true
  }

  private async pushOn (s: Session, step: PushStep, tensor: Uint8Array): Promise<boolean> {
    const next = s.next
    if (next == null) return false
    try {
      await withDeadline(5000, async signal => { await next.frames.writeWithBytes(step, tensor, signal) })
      return true
    } catch {
      next.stream.abort(new Error('push failed'))
      if (s.next === next) s.next = undefined
      return false
    }
  }

  private checkOpen (open: any): SessionReply | undefined {
    const h = this.hosted
    if (open?.type !== 'open') return { ok: false, error: 'bad-request', detail: 'the first frame must be {"type":"open",…}' }
    if (open.model !== h.model) return { ok: false, error: 'unknown-model', detail: `this agent hosts ${h.name} (${h.model.slice(0, 12)}…), not ${String(open.model).slice(0, 12)}…` }
    if (open.start !== h.range.first || open.end !== h.range.last) return { ok: false, error: 'wrong-range', detail: `this agent hosts blocks ${h.range.first}-${h.range.last}, not ${open.start}-${open.end}` }
    if (!WIRE_DTYPES.includes(open.dtype)) return { ok: false, error: 'bad-request', detail: `dtype must be one of ${WIRE_DTYPES.join(', ')}` }
    if (!Number.isSafeInteger(open.maxLength) || open.maxLength < 1) return { ok: false, error: 'bad-request', detail: 'maxLength must be a positive integer' }
    if (open.maxLength > h.config.contextLength) return { ok: false, error: 'context-full', detail: `maxLength ${open.maxLength} exceeds the model's context of ${h.config.contextLength}` }
    const free = this.stats().freeCacheTokens
    if (open.maxLength > free) return { ok: false, error: 'busy', detail: `cache full: ${free} tokens free, session needs ${open.maxLength}; try another peer or later` }
    return undefined
  }
}

/**
 * Work is signed for within a few tokens, and paid for within a bound: a client that stops
 * signing loses its session within `UNSIGNED_TOKENS_ALLOWED` tokens, one that stops paying after
 * twice the settlement period.
 */
function paymentRefusal (meter: HostMeter, mustBeSigned: number): SessionReply | undefined {
  if (meter.signedUnits < mustBeSigned) return { ok: false, error: 'payment-required', detail: `no signed receipt for the first ${mustBeSigned} token-blocks served (signed: ${meter.signedUnits}); sign at least every ${UNSIGNED_TOKENS_ALLOWED} tokens` }
  if (meter.mustPause) return { ok: false, error: 'payment-required', detail: 'too much work is unpaid: settle through the ledger, then open a new session' }
  return undefined
}

/** How long a pushed step beyond the unsigned allowance waits for the receipt the client is sending. */
const RECEIPT_WAIT_MS = 5000

function validStep (r: any): boolean {
  return Number.isSafeInteger(r?.tokens) && r.tokens >= 1 && Number.isSafeInteger(r.position) && r.position >= 0 && (r.dtype === undefined || typeof r.dtype === 'string')
}

const IDLE = Symbol('idle')

/** An error of the peer's bytes (not JSON, or a frame over the size limit), not of this host. */
function malformed (err: any): boolean {
  return err instanceof SyntaxError || err?.name === 'InvalidDataLengthError' || err?.name === 'InvalidMessageLengthError' || err?.name === 'InvalidDataLengthLengthError'
}

function randomId (): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, '0')).join('')
}
