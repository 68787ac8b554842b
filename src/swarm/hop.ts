import type { Connection, Stream } from '@libp2p/interface'
import { INFERENCE_PROTOCOL } from './messages.ts'
import { decodeTensor, encodeTensor, type WireDType } from './tensor-codec.ts'
import { SessionFailure, sessionFrames, type SessionReply } from './session-wire.ts'
import type { Hop } from './routing.ts'
import type { ClientPayments, WorkReceipt } from './payments.ts'

/** The client's end of one inference session with one server (one hop of the chain). */
export class HopSession {
  position = 0
  /** The host's payment session, when it charges and we can pay. */
  paySession?: string
  /** The receipt for everything served so far; it travels ahead of the next frame. */
  private receipt?: Promise<WorkReceipt>
  /** The host asked at its last reply to be paid. */
  settleAsked = false
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
      stream = await conn.newStream(INFERENCE_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(opts.timeoutMs) })
    } catch (err: any) {
      throw new SessionFailure('transport', `cannot open a session with ${hop.peer}: ${err?.message ?? err}`, hop.peer)
    }
    const frames = sessionFrames(stream)
    const session = new HopSession(hop, model, stream, frames, opts.dtype, opts.dim, opts.timeoutMs, opts.payments)
    await session.call(async signal => {
      await frames.write({ type: 'open', model, start: hop.start, end: hop.end, maxLength, dtype: opts.dtype }, signal)
      const ok = await session.expectOk(signal)
      if (opts.payments != null && typeof ok.session === 'string' && ok.session.length > 0 && ok.session.length <= 128) session.paySession = ok.session
    })
    return session
  }

  /** The signed receipt covering every token this host served in the session, if it charges. */
  async latestReceipt (): Promise<WorkReceipt | undefined> {
    return await this.receipt
  }

  /** Frames owed to the host before our next request: the receipt for what it served. */
  private async receiptFrames (): Promise<unknown[]> {
    const r = await this.receipt
    return r != null ? [{ type: 'receipt', receipt: r }] : []
  }

  /** Sends `tokens` hidden states, returns the range's output for them; `dtype` overrides the session's for this step, both ways. */
  async step (hidden: Float32Array, tokens: number, dtype: WireDType = this.dtype): Promise<Float32Array> {
    const t0 = performance.now()
    return await this.call(async signal => {
      const request = { type: 'step', position: this.position, tokens, dtype: dtype !== this.dtype ? dtype : undefined }
      const tensor = encodeTensor(hidden, dtype, this.dim)
      await this.frames.writeAll([...await this.receiptFrames(), request], tensor, signal)
      this.bytesSent += tensor.byteLength
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
      // Signed off the critical path: it is only needed with the next frame or at settlement.
      if (this.paySession != null) {
        this.receipt = this.payments!.sign({ server: this.hop.peer, model: this.model, session: this.paySession, tokens: this.position, layers: this.hop.end - this.hop.start + 1 })
        // A failed signature surfaces where the receipt is awaited, not as an unhandled rejection now.
        this.receipt.catch(() => {})
      }
      if (tokens === 1) {
        this.decodeWallMs.push(performance.now() - t0)
        this.decodeComputeMs.push(reply.computeMs ?? 0)
      }
      return out
    })
  }

  async close (): Promise<void> {
    try {
      await this.frames.writeAll([...await this.receiptFrames(), { type: 'close' }], undefined, AbortSignal.timeout(2000))
      await this.stream.close()
    } catch {
      this.stream.abort(new Error('session closed'))
    }
  }

  /** A stalled peer is a failed peer: every exchange has a deadline. */
  private async call<T> (fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = AbortSignal.timeout(this.timeoutMs)
    try {
      return await fn(signal)
    } catch (err: any) {
      const failure = err instanceof SessionFailure
        ? err
        : signal.aborted
          ? new SessionFailure('timeout', `${this.hop.peer} did not answer within ${this.timeoutMs} ms`)
          : new SessionFailure('transport', `${this.hop.peer}: ${err?.message ?? err}`)
      failure.peer ??= this.hop.peer
      throw failure
    }
  }

  private async expectOk (signal: AbortSignal): Promise<Extract<SessionReply, { ok: true }>> {
    let reply: SessionReply
    try {
      reply = await this.frames.readJson(signal)
    } catch (err: any) {
      if (signal.aborted) throw err
      throw new SessionFailure('transport', `${this.hop.peer} closed the session: ${err?.message ?? err}`)
    }
    if (reply?.ok === true) return reply
    if (reply?.ok === false) throw new SessionFailure(reply.error, `${this.hop.peer}: ${reply.error}: ${reply.detail}`)
    throw new SessionFailure('malformed', `${this.hop.peer} sent an unreadable reply`)
  }
}
