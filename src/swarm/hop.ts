import type { Connection, Stream } from '@libp2p/interface'
import { INFERENCE_PROTOCOL } from './messages.ts'
import { decodeTensor, encodeTensor, type WireDType } from './tensor-codec.ts'
import { SessionFailure, sessionFrames, type SessionReply } from './session-wire.ts'
import type { Hop } from './routing.ts'
import { exactQuantile } from '../stats.ts'
import { withDeadline } from '../mesh/deadline.ts'
import { openStream } from '../mesh/frames.ts'
import { RECEIPT_EVERY_TOKENS, type ClientPayments, type WorkReceipt } from './payments.ts'

/** Decode steps a hop must have answered before its own pace sets its deadline. */
const PACE_SAMPLES = 8
/** A paced deadline is this many of the hop's median decode waits... */
const PACED_DEADLINE_MEDIANS = 50
/** ...and never under this: a GC pause, a busy machine or a renegotiating link is not a failure. */
const PACED_DEADLINE_FLOOR_MS = 5000

/**
 * The deadline for a decode step of a hop that answered the last ones in `decodeWallMs`: a host
 * that has been answering in milliseconds and then goes silent is routed around in seconds, not
 * after the session's whole step timeout (meant for prefills and the first steps).
 */
export function decodeDeadline (timeoutMs: number, decodeWallMs: readonly number[]): number {
  if (decodeWallMs.length < PACE_SAMPLES) return timeoutMs
  const median = exactQuantile(decodeWallMs.slice(-32), 0.5)
  return Math.min(timeoutMs, Math.max(PACED_DEADLINE_FLOOR_MS, Math.ceil(PACED_DEADLINE_MEDIANS * median)))
}

/** The client's end of one inference session with one server (one hop of the chain). */
export class HopSession {
  position = 0
  /** The host's payment session, when it charges and we can pay. */
  paySession?: string
  /** The id under which the previous hop may push into this session, when the host takes pushes. */
  pushId?: string
  /** The latest receipt, sent as soon as it is signed, and the position it covers. */
  private receipt?: Promise<WorkReceipt>
  private signedPosition = 0
  /** Frames go out one write at a time (receipts are written while steps are in flight). */
  private writing: Promise<unknown> = Promise.resolve()
  /** The host asked at its last reply to be paid. */
  settleAsked = false
  /** The host pushed its last output on to the next hop. */
  pushed = false
  /** Tensor bytes sent to and received from the host in this session. */
  bytesSent = 0
  bytesReceived = 0
  /** Per one-token (decode) step: how long the client waited, and what the host says it computed. */
  readonly decodeWallMs: number[] = []
  readonly decodeComputeMs: number[] = []

  private constructor (
    readonly hop: Hop,
    private readonly model: string,
    private readonly stream: Stream,
    private readonly frames: ReturnType<typeof sessionFrames>,
    private readonly dtype: WireDType,
    private readonly dim: number,
    private readonly timeoutMs: number,
    private readonly payments?: ClientPayments
  ) {}

  static async open (conn: Connection, hop: Hop, model: string, maxLength: number, opts: { dtype: WireDType, dim: number, timeoutMs: number, payments?: ClientPayments }): Promise<HopSession> {
    let stream: Stream
    try {
      stream = await openStream(conn, INFERENCE_PROTOCOL, AbortSignal.timeout(opts.timeoutMs))
    } catch (err: any) {
      throw new SessionFailure('transport', `cannot open a session with ${hop.peer}: ${err?.message ?? err}`, hop.peer)
    }
    const frames = sessionFrames(stream)
    const session = new HopSession(hop, model, stream, frames, opts.dtype, opts.dim, opts.timeoutMs, opts.payments)
    await session.call(async signal => {
      await frames.write({ type: 'open', model, start: hop.start, end: hop.end, maxLength, dtype: opts.dtype }, signal)
      const ok = await session.expectOk(signal)
      if (opts.payments != null && typeof ok.session === 'string' && ok.session.length > 0 && ok.session.length <= 128) session.paySession = ok.session
      if (typeof ok.push === 'string' && ok.push.length > 0 && ok.push.length <= 64) session.pushId = ok.push
    })
    return session
  }

  /**
   * Has this host push forwarded outputs straight to `next`'s session (or stop, without one).
   * False when it cannot: the client then carries those hidden states itself.
   */
  async link (next?: HopSession): Promise<boolean> {
    if (next != null && next.pushId == null) return false
    return await this.call(async signal => {
      await this.write(async () => { await this.frames.write(next != null ? { type: 'next', peer: next.hop.peer, push: next.pushId } : { type: 'next' }, signal) })
      const reply = await this.readReply(signal)
      if (reply?.ok === true && reply.tokens === undefined) return true
      if (reply?.ok === false && reply.error === 'unreachable') return false
      throw this.replyFailure(reply)
    })
  }

  /** The signed receipt covering every token this host served in the session, if it charges. */
  async latestReceipt (): Promise<WorkReceipt | undefined> {
    if (this.signedPosition < this.position) this.signReceipt()
    return await this.receipt
  }

  /**
   * Signs for everything served so far, off the critical path, and sends it as soon as it is
   * ready: with pushes, no frame of ours may be going to this host soon.
   */
  private signReceipt (): void {
    if (this.paySession == null) return
    this.signedPosition = this.position
    const receipt = this.payments!.sign({ server: this.hop.peer, model: this.model, session: this.paySession, tokens: this.position, layers: this.hop.end - this.hop.start + 1 })
    this.receipt = receipt
    // A failed signature or a closed stream surfaces at the next exchange, not as an unhandled rejection now.
    void receipt.then(async r => { await this.write(async () => { await this.frames.write({ type: 'receipt', receipt: r }) }) }).catch(() => {})
  }

  private async write (fn: () => Promise<void>): Promise<void> {
    const next = this.writing.then(fn)
    this.writing = next.catch(() => {})
    await next
  }

  /** Sends `tokens` hidden states, returns the range's output for them; `dtype` overrides the session's for this step, both ways. */
  async step (hidden: Float32Array, tokens: number, dtype: WireDType = this.dtype, forward = false): Promise<Float32Array> {
    const t0 = performance.now()
    await this.call(async signal => {
      // A receipt being signed goes out before the step.
      await this.receipt
      const request = { type: 'step', position: this.position, tokens, dtype: dtype !== this.dtype ? dtype : undefined, forward: forward || undefined }
      const tensor = encodeTensor(hidden, dtype, this.dim)
      await this.write(async () => { await this.frames.writeWithBytes(request, tensor, signal) })
      this.bytesSent += tensor.byteLength
    })
    return await this.receive(tokens, dtype, t0)
  }

  /**
   * The output of the step this host got from the previous hop's push (or from `step`); `pushed`
   * then says whether the host sent it on to the next hop itself.
   */
  async receive (tokens: number, dtype: WireDType = this.dtype, t0 = performance.now()): Promise<Float32Array> {
    const deadline = tokens === 1 ? decodeDeadline(this.timeoutMs, this.decodeWallMs) : this.timeoutMs
    return await this.call(async signal => {
      const reply = await this.expectOk(signal)
      if (reply.tokens !== tokens) throw new SessionFailure('malformed', `${this.hop.peer} answered for ${String(reply.tokens)} tokens, not ${tokens}`)
      let out: Float32Array
      try {
        const bytes = await this.frames.readBytes(signal)
        this.bytesReceived += bytes.byteLength
        out = decodeTensor(bytes, dtype, tokens, this.dim)
      } catch (err: any) {
        throw new SessionFailure('malformed', `${this.hop.peer} sent a bad tensor: ${err.message}`)
      }
      this.position += tokens
      this.settleAsked = reply.settle === true
      this.pushed = reply.pushed === true
      if (this.position - this.signedPosition >= RECEIPT_EVERY_TOKENS) this.signReceipt()
      if (tokens === 1) {
        this.decodeWallMs.push(performance.now() - t0)
        this.decodeComputeMs.push(reply.computeMs ?? 0)
      }
      return out
    }, deadline)
  }

  async close (): Promise<void> {
    try {
      // The last receipt covers the whole session and goes out before the close (the host may settle on it).
      await this.latestReceipt().catch(() => {})
      await this.write(async () => { await this.frames.write({ type: 'close' }, AbortSignal.timeout(2000)) })
      await this.stream.close()
    } catch {
      this.stream.abort(new Error('session closed'))
    }
  }

  /** A stalled peer is a failed peer: every exchange has a deadline. */
  private async call<T> (fn: (signal: AbortSignal) => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    let deadline: AbortSignal | undefined
    try {
      return await withDeadline(timeoutMs, async signal => { deadline = signal; return await fn(signal) })
    } catch (err: any) {
      const failure = err instanceof SessionFailure
        ? err
        : deadline?.aborted === true
          ? new SessionFailure('timeout', `${this.hop.peer} did not answer within ${timeoutMs} ms`)
          : new SessionFailure('transport', `${this.hop.peer}: ${err?.message ?? err}`)
      failure.peer ??= this.hop.peer
      throw failure
    }
  }

  private async readReply (signal: AbortSignal): Promise<SessionReply> {
    try {
      return await this.frames.readJson(signal)
    } catch (err: any) {
      if (signal.aborted) throw err
      throw new SessionFailure('transport', `${this.hop.peer} closed the session: ${err?.message ?? err}`)
    }
  }

  private replyFailure (reply: SessionReply | undefined): SessionFailure {
    if (reply?.ok === false) return new SessionFailure(reply.error, `${this.hop.peer}: ${reply.error}: ${reply.detail}`)
    return new SessionFailure('malformed', `${this.hop.peer} sent an unreadable reply`)
  }

  private async expectOk (signal: AbortSignal): Promise<Extract<SessionReply, { ok: true }>> {
    const reply = await this.readReply(signal)
    if (reply?.ok === true) return reply
    throw this.replyFailure(reply)
  }
}
