import type { Connection, Stream } from '@libp2p/interface'
import type { BlockRange, KvCache } from '../engine/stages.ts'
import type { LlamaConfig } from '../model/config.ts'
import { decodeTensor, encodeTensor, WIRE_DTYPES } from './tensor-codec.ts'
import { SessionFailure, sessionFrames, type SessionReply, type SessionRequest } from './session-wire.ts'
import type { HostMeter, HostPayments } from './payments.ts'

export interface HostedRange {
  /** Manifest id of the model. */
  model: string
  name: string
  config: LlamaConfig
  range: BlockRange
  /** Where the weights came from, announced so others can load the same file. */
  url?: string
  /** Largest number of tokens one forward call may take (WebGPU attention needs < 32). */
  maxChunk: number
}

export interface ServerOptions {
  /** Memory the KV caches of all sessions together may take. */
  cacheBudgetBytes: number
  /** A session with no step for this long is closed and its cache freed. */
  idleMs?: number
  /** Charge clients for their sessions; without it this host serves for free. */
  payments?: HostPayments
}

interface Session {
  id: number
  client: string
  cache: KvCache
  maxLength: number
  lastActive: number
  tokens: number
}

export interface ServedStats {
  sessions: number
  capacityTokens: number
  freeCacheTokens: number
  msPerTokenLayer: number
  /** Tokens × blocks served, per client: what receipts are made of. */
  servedByClient: Record<string, { tokens: number, blockTokens: number }>
}

/**
 * Serves one hosted block range to many clients: each stream is one session with its own KV
 * cache over the shared weights. Forward calls are serialised (one ONNX session); everything
 * is driven by stream events, so a hidden tab keeps serving without timers.
 */
export class ShardServer {
  private readonly sessions = new Map<number, Session>()
  private nextId = 1
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
      servedByClient: structuredClone(this.served)
    }
  }

  /** Closes sessions idle for too long (a client that vanished without closing its stream). */
  reapIdle (now = Date.now()): number {
    let n = 0
    for (const s of this.sessions.values()) {
      if (now - s.lastActive > (this.opts.idleMs ?? 60_000)) {
        this.drop(s)
        n++
      }
    }
    return n
  }

  private drop (s: Session): void {
    s.cache.dispose()
    this.sessions.delete(s.id)
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
    const reply = async (r: SessionReply): Promise<void> => { await frames.write(r) }
    let session: Session | undefined
    let meter: HostMeter | undefined
    try {
      const open = await frames.readJson(AbortSignal.timeout(15_000)) as SessionRequest
      const refusal = this.checkOpen(open)
      if (refusal != null) {
        await reply(refusal)
        return
      }
      const o = open as Extract<SessionRequest, { type: 'open' }>
      session = { id: this.nextId++, client, cache: this.hosted.range.newCache(), maxLength: o.maxLength, lastActive: Date.now(), tokens: 0 }
      this.sessions.set(session.id, session)
      // Our own id for the payment session, so no client can make two sessions share one account of what was paid.
      const paySession = this.opts.payments != null && opts.free !== true ? randomId() : undefined
      meter = paySession != null ? this.opts.payments!.meter(client, paySession) : undefined
      await reply({ ok: true, session: paySession })
      const dim = this.hosted.config.dim
      for (;;) {
        const req = await frames.readJson(AbortSignal.timeout(this.opts.idleMs ?? 60_000)) as SessionRequest
        if (req?.type === 'close') return
        if (req?.type === 'receipt' && meter != null) {
          const r = req.receipt
          if (r?.model !== this.hosted.model || r.layers !== this.blocks || !(await meter.accept(r))) {
            await reply({ ok: false, error: 'bad-request', detail: 'the receipt is not a newer one signed by this client for this session, model and block range' })
            return
          }
          continue
        }
        if (meter != null) {
          const refusal = paymentRefusal(meter, session.tokens * this.blocks)
          if (refusal != null) {
            await reply(refusal)
            return
          }
        }
        if (req?.type !== 'step' || !Number.isSafeInteger(req.tokens) || req.tokens < 1 || !Number.isSafeInteger(req.position) || req.position < 0) {
          await reply({ ok: false, error: 'bad-request', detail: 'expected {"type":"step","position":P,"tokens":N} followed by a tensor frame' })
          return
        }
        const bytes = await frames.readBytes(AbortSignal.timeout(30_000))
        // A client replaying history after a failover starts again at 0 on a fresh session;
        // anything else out of order is a client bug, and we say so rather than guess.
        if (req.position !== session.cache.position) {
          await reply({ ok: false, error: 'position', detail: `step at position ${req.position}, but this session holds ${session.cache.position} tokens` })
          return
        }
        if (req.position + req.tokens > session.maxLength) {
          await reply({ ok: false, error: 'context-full', detail: `${req.position} + ${req.tokens} tokens exceeds the session's maximum length of ${session.maxLength}` })
          return
        }
        const dtype = req.dtype ?? o.dtype
        if (!WIRE_DTYPES.includes(dtype)) {
          await reply({ ok: false, error: 'bad-request', detail: `dtype must be one of ${WIRE_DTYPES.join(', ')}` })
          return
        }
        let hidden: Float32Array
        try {
          hidden = decodeTensor(bytes, dtype, req.tokens, dim)
        } catch (err: any) {
          await reply({ ok: false, error: 'bad-request', detail: err.message })
          return
        }
        const s = session
        const t0 = performance.now()
        const out = await this.run(async () => await this.forward(hidden, req.tokens, s.cache))
        const computeMs = performance.now() - t0
        if (req.tokens === 1) this.msPerTokenLayer = 0.8 * this.msPerTokenLayer + 0.2 * (computeMs / this.blocks)
        s.lastActive = Date.now()
        s.tokens += req.tokens
        const tally = this.served[client] ??= { tokens: 0, blockTokens: 0 }
        tally.tokens += req.tokens
        tally.blockTokens += req.tokens * this.blocks
        await frames.writeWithBytes({ ok: true, tokens: req.tokens, computeMs: Math.round(computeMs * 100) / 100, settle: meter?.wantsSettlement === true ? true : undefined } satisfies SessionReply, encodeTensor(out, dtype, dim))
      }
    } catch (err: any) {
      if (!(err instanceof SessionFailure) && stream.status === 'open') {
        await reply({ ok: false, error: 'internal', detail: String(err?.message ?? err) }).catch(() => {})
      }
    } finally {
      meter?.close()
      if (session != null) this.drop(session)
      await stream.close().catch(() => { stream.abort(new Error('session closed')) })
    }
  }

  /** Prefill in chunks the backend runs correctly (WebGPU attention misbehaves at >= 32 tokens). */
  private async forward (hidden: Float32Array, tokens: number, cache: KvCache): Promise<Float32Array> {
    const dim = this.hosted.config.dim
    if (tokens <= this.hosted.maxChunk) return await this.hosted.range.forward(hidden, tokens, cache)
    const out = new Float32Array(tokens * dim)
    for (let t = 0; t < tokens; t += this.hosted.maxChunk) {
      const n = Math.min(this.hosted.maxChunk, tokens - t)
      out.set(await this.hosted.range.forward(hidden.subarray(t * dim, (t + n) * dim), n, cache), t * dim)
    }
    return out
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
 * Work is signed for before more is done, and paid for within a bound: a client that stops
 * signing loses its session at once, one that stops paying after twice the settlement period.
 */
function paymentRefusal (meter: HostMeter, servedUnits: number): SessionReply | undefined {
  if (meter.signedUnits < servedUnits) return { ok: false, error: 'payment-required', detail: `no signed receipt for the ${servedUnits} token-blocks served so far (signed: ${meter.signedUnits})` }
  if (meter.mustPause) return { ok: false, error: 'payment-required', detail: 'too much work is unpaid: settle through the ledger, then open a new session' }
  return undefined
}

function randomId (): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, '0')).join('')
}
