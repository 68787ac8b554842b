import type { Embedding, Head } from '../engine/stages.ts'
import { Sampler, type SamplerOptions } from '../engine/sampler.ts'
import type { LlamaConfig } from '../model/config.ts'
import { HopSession } from './hop.ts'
import { BanList, findRoute, type Hop } from './routing.ts'
import { formatBlocks, missingRanges, type ShardEntry } from './shard-table.ts'
import { SessionFailure } from './session-wire.ts'
import type { Link } from '../mesh/dialer.ts'
import { decodeTensor, encodeTensor, type WireDType } from './tensor-codec.ts'
import { compareOutputs, digest, type Standing } from './verify.ts'
import type { SpotCheckEvidence } from './messages.ts'
import type { ClientPayments, Settlement } from './payments.ts'
import { median, quantile } from '../stats.ts'

export interface ClientDeps {
  link: Link
  /** Live shard entries for the model. */
  shards: () => ShardEntry[]
  rtt: (peer: string) => number | undefined
  bans: BanList
  standing: Standing
  /** Trust from ratings and evidence (the ledger's reputation), 0..1; weighs routing with standing. */
  trust?: (peer: string) => number
  /** Called with signed-to-be evidence when a spot check finds a mismatch. */
  onEvidence?: (e: SpotCheckEvidence) => void
  /** Probability that a decode step is also run on a second server of the same range. */
  spotCheckRate?: number
  random?: () => number
  /** Pays hosts that charge; without it only free hosts serve this client. */
  payments?: ClientPayments
}

/** The caller's local stages, as in Petals: the embedding and head stay with the client. */
export interface LocalEnds { config: LlamaConfig, embedding: Embedding, head: Head }

export interface MeshGenerateOptions extends SamplerOptions {
  maxTokens: number
  stopTokens?: Set<number>
  dtype?: WireDType
  /**
   * Wire dtype for steps of at least PREFILL_TOKENS tokens (prefills), e.g. q8 to cut a long
   * prompt's bytes by four; decode steps keep `dtype`. Lossy dtypes change the outputs slightly.
   */
  prefillDtype?: WireDType
  stepTimeoutMs?: number
  /**
   * Decode steps go client → first host, then host → host (Petals' rpc_push), each host also
   * returning its output to the client for failover and spot checks. Default on; off, the
   * client carries every hidden state itself.
   */
  push?: boolean
  /** How long setting up a chain may wait for temporarily banned peers before giving up (ms). */
  setupDeadlineMs?: number
  signal?: AbortSignal
  onToken?: (id: number) => void
  /**
   * Asked after each token (after `onToken`): true ends the generation there as end-of-sequence
   * would, result and payments intact. The API's stop sequences are text, not token ids.
   */
  shouldStop?: () => boolean
  onRoute?: (route: Hop[], reason: string) => void
}

export interface MeshGenerateResult {
  tokens: number[]
  routes: Array<{ hops: Hop[], reason: string }>
  timings: { ttft_ms: number, total_ms: number, decode_tokens_per_s: number, hops: HopTiming[] }
  failovers: number
  spotChecks: number
  /** Steps chosen for a spot check that no second host could check (none serves the range, or none answered). */
  spotChecksSkipped: number
  /** Hop inputs that one host pushed to the next instead of the client sending them. */
  pushedSteps: number
  /** Hidden-state bytes exchanged with the hosts of the chain (replaced hops included, spot checks not). */
  wire: { bytesSent: number, bytesReceived: number }
  /** What this generation paid its hosts (micro-credits, fees included), payment by payment. */
  cost: { paid: number, settlements: Settlement[] }
}

/**
 * One hop of the final route over the decode steps: what the client waited for a step (median
 * and 90th percentile) and what the host says it computed (median); the difference is the
 * network and the messaging.
 */
export interface HopTiming { peer: string, start: number, end: number, steps: number, wall_ms: number, p90_wall_ms: number, compute_ms: number }

/** Steps of this many tokens or more are prefills, which may travel in `prefillDtype`. */
export const PREFILL_TOKENS = 16

/** A hidden state as the receiver decodes it from `dtype`. */
function onTheWire (hidden: Float32Array, dtype: WireDType, dim: number): Float32Array {
  return decodeTensor(encodeTensor(hidden, dtype, dim), dtype, hidden.length / dim, dim)
}

/** Planning failed only because every server of some blocks is temporarily banned. */
class AllBanned extends Error {
  constructor (message: string, readonly retryInMs: number) { super(message) }
}

/** Names the failure that led to the bans, so the user sees why the peers were dropped. */
function withCause (err: unknown, cause: string | undefined): unknown {
  if (cause == null || !(err instanceof Error)) return err
  return new Error(`${err.message} (last failure: ${cause})`)
}

async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    const onAbort = (): void => { clearTimeout(t); reject(signal!.reason) }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Inputs each hop has received so far, kept so a replacement can rebuild its cache by replay. */
class History {
  private chunks: Float32Array[] = []
  tokens = 0
  add (x: Float32Array, tokens: number): void { this.chunks.push(x); this.tokens += tokens }
  all (): Float32Array {
    const out = new Float32Array(this.chunks.reduce((n, c) => n + c.length, 0))
    let o = 0
    for (const c of this.chunks) { out.set(c, o); o += c.length }
    this.chunks = [out]
    return out
  }
}

/**
 * Pays every session of a generation (replaced hops and spot checks included) for what it
 * served: when the host asks, and once more at the end. One payment at a time per session, as
 * each pays only what the previous ones left unpaid.
 */
class Paymaster {
  private readonly queues = new Map<HopSession, Promise<void>>()
  private readonly running = new Set<HopSession>()
  readonly settlements: Settlement[] = []

  constructor (private readonly payments?: ClientPayments) {}

  track (s: HopSession): void {
    if (s.paySession != null && !this.queues.has(s)) this.queues.set(s, Promise.resolve())
  }

  /** A payment the host asked for mid-generation; one already on its way covers it. */
  requested (s: HopSession): void {
    if (!this.running.has(s)) void this.settle(s)
  }

  async settle (s: HopSession): Promise<void> {
    const queued = this.queues.get(s)
    if (queued == null || this.payments == null) return
    const payments = this.payments
    const next = queued.then(async () => {
      this.running.add(s)
      let units = 0
      try {
        const receipt = await s.latestReceipt()
        if (receipt == null) return
        units = receipt.tokens * receipt.layers
        const paid = await payments.settle(receipt)
        if (paid != null) this.settlements.push(paid)
      } catch (err: any) {
        this.settlements.push({ server: s.hop.peer, session: s.paySession!, units, amount: 0, fee: 0, acknowledged: false, error: String(err?.message ?? err) })
      } finally {
        this.running.delete(s)
      }
    })
    this.queues.set(s, next)
    await next
  }

  async settleAll (): Promise<MeshGenerateResult['cost']> {
    await Promise.all([...this.queues.keys()].map(async s => { await this.settle(s) }))
    return { paid: this.settlements.reduce((n, x) => n + x.amount + x.fee, 0), settlements: this.settlements.slice() }
  }
}

/**
 * Generates through a chain of peers. On a failing hop (vanished, stalled, refusing, malformed)
 * it bans the peer, routes a replacement for that hop's blocks onward, replays the recorded
 * inputs to rebuild the replacement's KV cache, and continues: greedy output is unchanged.
 */
export class MeshClient {
  constructor (private readonly deps: ClientDeps, private readonly ends: LocalEnds, readonly model: string) {}

  plan (from: number): Hop[] {
    const n = this.ends.config.nLayers
    const entries = this.deps.shards()
    // Trust comes from a global computation over all ratings: once per peer per plan.
    const trust = new Map<string, number>()
    const standing = (p: string): number => {
      if (!trust.has(p)) trust.set(p, this.deps.trust?.(p) ?? 1)
      return this.deps.standing.get(p) * trust.get(p)!
    }
    const route = findRoute(entries, n, { rttMs: p => this.deps.rtt(p), banned: p => this.deps.bans.isBanned(p), standing, from })
    if (route != null) return route
    const gaps = missingRanges(entries, n)
    if (gaps.length > 0) throw new Error(`the mesh does not cover this model: no peer serves ${formatBlocks(gaps)} (of 0-${n - 1})`)
    const usable = entries.filter(e => !this.deps.bans.isBanned(e.peer))
    const unreachable = missingRanges(usable, n).filter(([, b]) => b >= from)
    const banned = entries.filter(e => this.deps.bans.isBanned(e.peer)).map(e => e.peer)
    throw new AllBanned(`no reachable peer serves ${formatBlocks(unreachable.length > 0 ? unreachable : [[from, n - 1]])} right now: the peers that serve them just failed; try again shortly`,
      this.deps.bans.untilFirstExpiry(banned))
  }

  async generate (prompt: number[], opts: MeshGenerateOptions): Promise<MeshGenerateResult> {
    if (prompt.length === 0) throw new Error('the prompt has no tokens')
    const c = this.ends.config
    const maxLength = prompt.length + opts.maxTokens
    if (maxLength > c.contextLength) throw new Error(`prompt (${prompt.length}) + max tokens (${opts.maxTokens}) exceeds the model's context of ${c.contextLength} tokens`)
    const dtype = opts.dtype ?? 'f32'
    const timeoutMs = opts.stepTimeoutMs ?? 30_000
    const sampler = new Sampler(opts)
    const result: MeshGenerateResult = { tokens: [], routes: [], timings: { ttft_ms: 0, total_ms: 0, decode_tokens_per_s: 0, hops: [] }, failovers: 0, spotChecks: 0, spotChecksSkipped: 0, pushedSteps: 0, wire: { bytesSent: 0, bytesReceived: 0 }, cost: { paid: 0, settlements: [] } }
    const chainSessions: HopSession[] = []
    const paymaster = new Paymaster(this.deps.payments)
    let hops: HopSession[] = []
    let histories: History[] = []
    /** Every hop pushes its decode outputs on to the next one. */
    let linked = false

    /** Links hops[from-1] → hops[from] → … → the last; with any link missing, the client carries the states. */
    const linkChain = async (from: number): Promise<void> => {
      const wasLinked = linked
      linked = false
      if (opts.push === false || hops.length < 2) return
      try {
        for (let i = wasLinked ? Math.max(0, from - 1) : 0; i < hops.length - 1; i++) {
          if (!(await hops[i].link(hops[i + 1]))) return
        }
        linked = true
      } catch {
        // A host that fails while being linked is found out, and replaced, at its next step.
      }
    }

    /** Opens sessions along `route`, feeding `replay` (the inputs of its first hop so far) through it. */
    const openChain = async (route: Hop[], replay?: History): Promise<{ sessions: HopSession[], histories: History[] }> => {
      const sessions: HopSession[] = []
      const hist: History[] = []
      let input = replay != null && replay.tokens > 0 ? replay.all() : undefined
      try {
        for (const hop of route) {
          const s = await this.openSession(hop, maxLength, { dtype, timeoutMs })
          sessions.push(s)
          chainSessions.push(s)
          paymaster.track(s)
          const h = new History()
          if (input != null) {
            h.add(input, replay!.tokens)
            input = await s.step(input, replay!.tokens)
          }
          hist.push(h)
        }
      } catch (err) {
        for (const s of sessions) void s.close()
        throw err
      }
      return { sessions, histories: hist }
    }

    /**
     * Routes and opens a chain from block `from`, banning and re-routing around peers that fail
     * while it is being set up. `replay` rebuilds the new hops' caches.
     */
    const establish = async (from: number, replay?: History): Promise<{ route: Hop[], sessions: HopSession[], histories: History[], failures: string[] }> => {
      // A link that failed once often works a moment later (a relay reservation renewing, a
      // WebRTC upgrade in flight): wait for the ban to lapse rather than fail the request.
      const deadline = performance.now() + (opts.setupDeadlineMs ?? 20_000)
      const failures: string[] = []
      for (let attempt = 0; ; attempt++) {
        let route: Hop[]
        try {
          route = this.plan(from)
        } catch (err) {
          const wait = err instanceof AllBanned ? err.retryInMs : Infinity
          if (performance.now() + wait > deadline) throw withCause(err, failures.at(-1))
          await sleep(wait, opts.signal)
          continue
        }
        try {
          return { route, ...(await openChain(route, replay)), failures }
        } catch (err) {
          if (!(err instanceof SessionFailure) || err.peer == null || attempt >= 8) throw err
          failures.push(err.message)
          this.deps.bans.ban(err.peer)
        }
      }
    }

    /** Replace hop i and everything after it, rebuilding caches from hop i's recorded inputs. */
    const recover = async (i: number, err: unknown): Promise<void> => {
      const failed = hops[i]
      this.deps.bans.ban((err as SessionFailure).peer ?? failed.hop.peer)
      for (const s of hops.slice(i)) void s.close()
      const next = await establish(failed.hop.start, histories[i])
      hops = [...hops.slice(0, i), ...next.sessions]
      histories = [...histories.slice(0, i), ...next.histories]
      await linkChain(i)
      result.failovers++
      const reason = `blocks ${failed.hop.start}+ moved off ${failed.hop.peer}: ${(err as Error)?.message ?? err}`
      result.routes.push({ hops: hops.map(s => s.hop), reason })
      opts.onRoute?.(hops.map(s => s.hop), reason)
    }

    const forward = async (ids: number[]): Promise<Float32Array> => {
      let hidden = this.ends.embedding.embed(ids)
      const wire = ids.length >= PREFILL_TOKENS ? opts.prefillDtype ?? dtype : dtype
      // Prompts are sent hop by hop (big, once); decode steps are pushed along a linked chain.
      const pushing = ids.length === 1
      /** Hops before this one already hold the step; a replacement hop is sent it by the client. */
      let sendFrom = 0
      for (let i = 0; i < hops.length;) {
        opts.signal?.throwIfAborted()
        try {
          const viaPush = pushing && i > sendFrom && hops[i - 1].pushed
          const out = viaPush
            ? await hops[i].receive(ids.length, wire)
            : await hops[i].step(hidden, ids.length, wire, pushing && linked && i < hops.length - 1)
          if (viaPush) result.pushedSteps++
          if (hops[i].settleAsked) paymaster.requested(hops[i])
          if (ids.length === 1) await this.maybeSpotCheck(hops[i], histories[i], hidden, out, { maxLength, dtype, timeoutMs, paymaster }, result)
          // What the hop received, so a replay rebuilds exactly its cache.
          histories[i].add(wire === dtype ? hidden : onTheWire(hidden, wire, c.dim), ids.length)
          this.deps.bans.clear(hops[i].hop.peer)
          hidden = out
          i++
        } catch (err) {
          if (!(err instanceof SessionFailure)) throw err
          await recover(i, err)
          sendFrom = i
        }
      }
      return await this.ends.head.logits(hidden.subarray((ids.length - 1) * c.dim), 1)
    }

    const t0 = performance.now()
    const opened = await establish(0)
    hops = opened.sessions
    histories = opened.histories
    await linkChain(0)
    // Peers that failed while the chain was set up are part of why this route was chosen.
    const initial = opened.failures.length > 0 ? `initial, after: ${opened.failures.join('; ')}` : 'initial'
    result.routes.push({ hops: opened.route, reason: initial })
    opts.onRoute?.(opened.route, initial)
    try {
      let logits = await forward(prompt)
      const history = [...prompt]
      let tFirst = 0
      while (result.tokens.length < opts.maxTokens) {
        const id = sampler.sample(logits, history)
        result.tokens.push(id)
        history.push(id)
        if (result.tokens.length === 1) tFirst = performance.now()
        opts.onToken?.(id)
        if (opts.stopTokens?.has(id) === true || result.tokens.length >= opts.maxTokens || opts.shouldStop?.() === true) break
        logits = await forward([id])
      }
      const t2 = performance.now()
      result.timings = {
        ttft_ms: Math.round(tFirst - t0),
        total_ms: Math.round(t2 - t0),
        decode_tokens_per_s: result.tokens.length > 1 ? Math.round(((result.tokens.length - 1) / ((t2 - tFirst) / 1000)) * 10) / 10 : 0,
        hops: hops.filter(s => s.decodeWallMs.length > 0).map(s => ({
          peer: s.hop.peer, start: s.hop.start, end: s.hop.end, steps: s.decodeWallMs.length,
          wall_ms: median(s.decodeWallMs), p90_wall_ms: quantile(s.decodeWallMs, 0.9), compute_ms: median(s.decodeComputeMs)
        }))
      }
      return result
    } finally {
      result.wire = { bytesSent: chainSessions.reduce((n, s) => n + s.bytesSent, 0), bytesReceived: chainSessions.reduce((n, s) => n + s.bytesReceived, 0) }
      for (const s of hops) void s.close()
      // Hosts are paid for what they served even when the generation failed or was stopped.
      result.cost = await paymaster.settleAll()
    }
  }

  /**
   * Opens a session with `hop`'s peer over any link that works. A peer that answered and refused
   * is not asked again over another link; one that cannot be reached at all is a transport failure.
   */
  private async openSession (hop: Hop, maxLength: number, o: { dtype: WireDType, timeoutMs: number }): Promise<HopSession> {
    const answered = (err: unknown): boolean => err instanceof SessionFailure && err.code !== 'transport'
    try {
      return await this.deps.link(hop.peer, async conn => await HopSession.open(conn, hop, this.model, maxLength,
        { dtype: o.dtype, dim: this.ends.config.dim, timeoutMs: o.timeoutMs, payments: this.deps.payments }), answered)
    } catch (err: any) {
      if (err instanceof SessionFailure) throw err
      throw new SessionFailure('transport', `cannot reach ${hop.peer}: ${err?.message ?? err}`, hop.peer)
    }
  }

  /**
   * With some probability, re-runs this step on a second server of the same range (a fresh
   * session fed the hop's whole history) and compares; a mismatch becomes evidence.
   */
  private async maybeSpotCheck (session: HopSession, history: History, input: Float32Array, out: Float32Array,
    o: { maxLength: number, dtype: WireDType, timeoutMs: number, paymaster: Paymaster }, result: MeshGenerateResult): Promise<void> {
    const rate = this.deps.spotCheckRate ?? 0
    if (rate <= 0 || (this.deps.random ?? Math.random)() >= rate) return
    const hop = session.hop
    const dim = this.ends.config.dim
    const past = history.all()
    const all = new Float32Array(past.length + input.length)
    all.set(past)
    all.set(input, past.length)
    const tokens = history.tokens + 1
    let ref: Float32Array | undefined
    let other: ShardEntry | undefined
    // A checker that cannot be reached says nothing about the checked peer, but is banned for a
    // while like any failing peer, so a stale shard entry does not keep every check from running.
    for (let attempt = 0; attempt < 2 && ref == null; attempt++) {
      other = this.deps.shards().find(e => e.start === hop.start && e.end === hop.end && e.peer !== hop.peer && !this.deps.bans.isBanned(e.peer))
      if (other == null) break
      let checker: HopSession | undefined
      try {
        checker = await this.openSession({ ...hop, peer: other.peer }, o.maxLength, o)
        o.paymaster.track(checker)
        ref = (await checker.step(all, tokens)).subarray((tokens - 1) * dim)
      } catch {
        this.deps.bans.ban(other.peer)
      } finally {
        void checker?.close()
      }
    }
    if (ref == null || other == null) {
      result.spotChecksSkipped++
      return
    }
    result.spotChecks++
    const cmp = compareOutputs(out, ref)
    if (cmp.agrees) return
    this.deps.standing.penalise(hop.peer)
    this.deps.onEvidence?.({
      model: this.model, start: hop.start, end: hop.end, accused: hop.peer, reference: other.peer,
      maxDiff: cmp.maxDiff, tolerance: cmp.tolerance, inputDigest: digest(all), accusedDigest: digest(out), referenceDigest: digest(ref)
    })
    // The step is redone through the recovery path, which bans the accused.
    throw new SessionFailure('malformed', `${hop.peer} failed a spot check against ${other.peer} (max diff ${cmp.maxDiff.toExponential(2)} > ${cmp.tolerance.toExponential(2)})`, hop.peer)
  }
}
