import type { Connection, Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import type { AgentContext, AgentService } from '../peer/service.ts'
import type { Envelope } from '../protocol/envelope.ts'
import { EVIDENCE_TOPIC, INFERENCE_PROTOCOL, PUSH_PROTOCOL, SHARD_TOPIC, WEIGHTS_PROTOCOL, type ShardAnnounce, type SpotCheckEvidence } from './messages.ts'
import { ShardServer, type ServedStats } from './server.ts'
import { ShardTable, coverage, missingRanges, type ShardEntry } from './shard-table.ts'
import { BanList, type Hop } from './routing.ts'
import { overLink, type Link } from '../mesh/dialer.ts'
import { chooseRange, shouldMove } from './placement.ts'
import { MeshClient, type MeshGenerateOptions, type MeshGenerateResult, type LocalEnds } from './client.ts'
import { Standing } from './verify.ts'
import type { WireDType } from './tensor-codec.ts'
import { ClientSessions, type ClientSessionView } from './client-sessions.ts'
import { encodeChat, type ChatMessage } from '../model/chat-template.ts'
import { blocksThatFit, CACHE_SHARE, checkRange, loadEnds, loadRange, openForSwarm, type LoadedModel, type ModelLocation, type Progress } from './hosting.ts'
import { openPeerSource, serveWeights } from './weights.ts'
import { chunkStore } from './weight-cache.ts'
import type { ChunkStore } from './cached-source.ts'
import type { Payments, WorkCredits } from './payments.ts'
import type { ReputationPort } from './reputation-port.ts'
import { compareCopies, describeDivergence, type Divergence } from './divergence.ts'

const ANNOUNCE_EVERY_MS = 10_000
const REBALANCE_EVERY_MS = 30_000

export interface SwarmOptions {
  /** Memory this agent lends to hosting: weights plus KV caches. */
  memoryBudgetBytes?: number
  /** Share of that budget kept for the KV caches of client sessions. */
  cacheShare?: number
  spotCheckRate?: number
  /** Wire dtype of this agent's prefills as a client (q8 for slow uplinks); decode steps stay exact. */
  prefillDtype?: WireDType
  /**
   * CPU threads each of this agent's engines may use (Node); default: every core. Fewer keep a
   * machine that also does other work responsive, and serve small ranges no slower.
   */
  threads?: number
  /** As a client, have hosts push decode steps along the chain (default on); off, the client relays each hop. */
  push?: boolean
  /** Node: where remote weight pieces are cached (browsers use Cache Storage). */
  cacheDir?: string
  /** The agent's credit system: hosts charge and clients pay for inference. Without it, inference is free. */
  payments?: Payments
  /** Reputation (ratings and evidence) that routing weighs; none: every peer counts as 1. */
  reputation?: ReputationPort
  /** Told what the owner should act on (a hosted copy that differs from the mesh's); the view shows it too. */
  warn?: (message: string) => void
}

export interface HostingView {
  model: string
  name: string
  start: number
  end: number
  pinned: boolean
  stats: ServedStats
  /** Copies of the hosted model that others serve under another id: same name and layout, other bytes. */
  divergent: Divergence[]
}

export interface SwarmView {
  models: Array<{ model: string, name: string, nLayers: number, coverage: number[], missing: Array<[number, number]>, servers: ShardEntry[] }>
  hosting?: HostingView
  loading?: { phase: string, done: number, total: number }
  evidence: Array<SpotCheckEvidence & { by: string, ts: number }>
  standing: Record<string, number>
  /** Trust from ratings and evidence for every host in the shard table (1 when unknown). */
  trust: Record<string, number>
  lastRoute?: { model: string, hops: Hop[], reason: string }
  /** Generations this agent runs as a client: running, and the last few finished. */
  sessions: ClientSessionView[]
  /** Credits earned by hosting and paid for generations (absent when inference is free). */
  credits?: WorkCredits
}

async function closeModel (m: LoadedModel): Promise<void> {
  await m.opened.model.source.close?.().catch(() => {})
}

/**
 * Distributed inference for an agent: hosts a block range (chosen by placement, or pinned),
 * serves sessions over `/clawnet/inference/1.0.0`, keeps the shard table, and generates through
 * the mesh as a client with failover and spot checks.
 */
export class SwarmService implements AgentService {
  readonly name = 'swarm'
  readonly table = new ShardTable()
  readonly bans = new BanList()
  readonly standing = new Standing()
  private ctx?: AgentContext
  private server?: ShardServer
  private model?: LoadedModel
  private pinned = false
  private loading?: SwarmView['loading']
  private readonly evidence: SwarmView['evidence'] = []
  private readonly sessions = new ClientSessions()
  private announceSoon?: ReturnType<typeof setTimeout>
  private readonly clients = new Map<string, Promise<{ model: LoadedModel, ends: LocalEnds }>>()

  private readonly cache: ChunkStore
  /** Other copies of the hosted model (by their id), compared once each per hosted model. */
  private readonly divergent = new Map<string, Divergence>()
  private readonly compared = new Set<string>()

  constructor (private readonly opts: SwarmOptions = {}) {
    this.cache = chunkStore(opts.cacheDir)
  }

  async start (ctx: AgentContext): Promise<void> {
    this.ctx = ctx
    ctx.subscribe(SHARD_TOPIC, env => { this.onShard(env) })
    ctx.subscribe(EVIDENCE_TOPIC, env => { this.onEvidence(env) })
    // Both session protocols need blocks hosted here; without them the stream is refused at once.
    const hosting = (serve: (server: ShardServer, stream: Stream, conn: Connection) => Promise<void>) => async (stream: Stream, conn: Connection) => {
      if (this.server == null) {
        stream.abort(new Error('this agent hosts no blocks'))
        return
      }
      await serve(this.server, stream, conn)
    }
    await ctx.handle(INFERENCE_PROTOCOL, hosting(async (server, stream, conn) => {
      this.ctx?.changed()
      await server.handle(stream, conn)
      this.ctx?.changed()
    }))
    await ctx.handle(PUSH_PROTOCOL, hosting(async (server, stream) => { await server.handlePush(stream) }))
    await ctx.handle(WEIGHTS_PROTOCOL, async stream => {
      await serveWeights(stream, model => this.model?.manifest === model ? { source: this.model.opened.model.source, manifest: this.model.full } : undefined)
    })
    ctx.every(ANNOUNCE_EVERY_MS, async () => {
      if (this.table.expire()) ctx.changed()
      if (this.server?.reapIdle() ?? 0) ctx.changed()
      await this.announce()
      await this.compareWithMesh()
    })
    // A newcomer learns our range at once rather than at our next announce.
    ctx.onNewPeer(() => {
      clearTimeout(this.announceSoon)
      this.announceSoon = setTimeout(() => { void this.announce() }, 300)
    })
    // A host that says goodbye is routed around at once, not tried until its shard announce lapses.
    ctx.onPeerLeft(peer => { if (this.table.removePeer(peer)) ctx.changed() })
    ctx.every(REBALANCE_EVERY_MS, async () => { await this.rebalance() })
  }

  async stop (): Promise<void> {
    clearTimeout(this.announceSoon)
    await this.unhost()
    const models = new Set<LoadedModel>(this.model != null ? [this.model] : [])
    for (const pending of this.clients.values()) {
      const loaded = await pending.catch(() => undefined)
      if (loaded != null) models.add(loaded.model)
    }
    this.model = undefined
    this.clients.clear()
    for (const m of models) await closeModel(m)
  }

  // ---- hosting ----

  /**
   * Hosts a range of the model at `location`: the pinned `layers`, or the range placement picks
   * where the mesh is thinnest within this agent's memory budget. Only that range's weights load.
   */
  async host (location: ModelLocation, opts: { layers?: [number, number], pin?: boolean, onProgress?: Progress } = {}): Promise<HostingView> {
    const progress: Progress = (phase, done, total) => {
      this.loading = { phase, done, total }
      opts.onProgress?.(phase, done, total)
      this.ctx?.changed()
    }
    try {
      // A model id known to the mesh is loaded from the peers that hold it.
      const m = typeof location === 'string' && this.table.forModel(location).length > 0
        ? await this.openRemote(location)
        : await openForSwarm(location, { onProgress: progress, cache: this.cache, threads: this.opts.threads })
      const n = m.opened.model.config.nLayers
      const [first, last] = opts.layers ?? chooseRange(this.table.forModel(m.manifest).filter(e => e.peer !== this.ctx?.id), n, this.span(m))
      let loaded: Awaited<ReturnType<typeof loadRange>>
      try {
        checkRange(m, first, last, this.blocksBudget())
        await this.unhost()
        loaded = await loadRange(m, first, last, progress)
      } catch (err) {
        // This call opened the file and nothing else holds it: a refused range must not leak the handle.
        await closeModel(m)
        throw err
      }
      const { hosted, msPerTokenLayer } = loaded
      const previous = this.model
      this.model = m
      // Each host() opens the file anew (a rebalance too): the old handle would leak otherwise.
      if (previous != null && previous !== m) await closeModel(previous)
      this.pinned = opts.pin ?? opts.layers != null
      this.server = new ShardServer(hosted, { cacheBudgetBytes: this.cacheBudget(), payments: this.opts.payments, link: this.link }, msPerTokenLayer)
      if (previous?.manifest !== m.manifest) {
        this.divergent.clear()
        this.compared.clear()
      }
      await this.announce()
      void this.compareWithMesh()
      return this.hosting()!
    } finally {
      this.loading = undefined
      this.ctx?.changed()
    }
  }

  async unhost (): Promise<void> {
    const server = this.server
    this.server = undefined
    await server?.hosted.range.release()
    this.ctx?.changed()
  }

  private span (m: LoadedModel): number {
    return blocksThatFit(m, this.blocksBudget())
  }

  private blocksBudget (): number {
    return (this.opts.memoryBudgetBytes ?? 2 ** 31) * (1 - (this.opts.cacheShare ?? CACHE_SHARE))
  }

  private cacheBudget (): number {
    return (this.opts.memoryBudgetBytes ?? 2 ** 31) * (this.opts.cacheShare ?? CACHE_SHARE)
  }

  /** Moves to another range when that lifts the mesh's bottleneck enough (never when pinned). */
  private async rebalance (): Promise<void> {
    if (this.server == null || this.model == null || this.pinned || this.ctx == null || this.server.stats().sessions > 0) return
    const h = this.server.hosted
    const n = h.config.nLayers
    const target = shouldMove(this.table.forModel(h.model), this.ctx.id, [h.range.first, h.range.last], n)
    if (target != null) await this.host(this.model.location, { layers: target, pin: false })
  }

  private async announce (): Promise<void> {
    if (this.server == null || this.ctx == null) return
    const h = this.server.hosted
    const stats = this.server.stats()
    const rtts: Record<string, number> = {}
    for (const p of this.ctx.peers().slice(0, 64)) {
      const r = this.ctx.rtt(p.id)
      if (r != null) rtts[p.id] = r
    }
    const body: ShardAnnounce = {
      model: h.model,
      name: h.name.slice(0, 128),
      nLayers: h.config.nLayers,
      start: h.range.first,
      end: h.range.last,
      msPerTokenLayer: Math.round(stats.msPerTokenLayer * 1000) / 1000,
      freeCacheTokens: stats.freeCacheTokens,
      load: stats.capacityTokens > 0 ? Math.min(1, 1 - stats.freeCacheTokens / stats.capacityTokens) : 1,
      rtts,
      url: h.url,
      ttl: Math.round((ANNOUNCE_EVERY_MS * 3) / 1000)
    }
    this.table.apply(this.ctx.id, body)
    await this.ctx.publish(SHARD_TOPIC, 'shard.announce', body)
  }

  /** The topics carry only these types: the inbox refuses others. */
  private onShard (env: Envelope): void {
    this.table.apply(env.from, env.body as ShardAnnounce)
    this.ctx?.changed()
    void this.compareWithMesh()
  }

  /**
   * Compares the hosted copy with every other copy the mesh serves of a model of the same name
   * (see divergence.ts), asking one of its hosts for its manifest. Needs our copy's full
   * manifest: hashed here, or one published beside its URL or offered by the peer it came from.
   */
  private async compareWithMesh (): Promise<void> {
    const m = this.model
    const h = this.server?.hosted
    if (m?.full == null || h == null) return
    for (const other of this.table.models()) {
      if (other.model === h.model || other.name !== h.name || other.nLayers !== h.config.nLayers || this.compared.has(other.model)) continue
      this.compared.add(other.model)
      const hosts = this.table.forModel(other.model).filter(e => e.peer !== this.ctx?.id)
      let answered = false
      for (const host of hosts) {
        try {
          const offered = await this.link(host.peer, async conn => {
            const source = await openPeerSource(conn, other.model, 15_000)
            try {
              return await source.manifest()
            } finally {
              await source.close?.()
            }
          })
          if (offered == null) continue
          answered = true
          const d = compareCopies(m.full, m.opened.model, offered, other.model, hosts.length)
          // The copy compared may have been replaced meanwhile: what is found belongs to the one it was.
          if (d != null && this.model === m) {
            this.divergent.set(other.model, d)
            this.opts.warn?.(describeDivergence(h.name, h.model, d))
            this.ctx?.changed()
          }
          break
        } catch {
          // That host could not say (gone, or unreachable): the next one may.
        }
      }
      // Asked again at a later announce: a host that holds the manifest may come.
      if (!answered) this.compared.delete(other.model)
    }
  }

  private onEvidence (env: Envelope): void {
    const e = env.body as SpotCheckEvidence
    // Evidence is a signed claim by the checker, not proof: it lowers standing, it does not ban.
    this.standing.penalise(e.accused, 0.7)
    this.evidence.push({ ...e, by: env.from, ts: env.ts })
    if (this.evidence.length > 100) this.evidence.shift()
    this.ctx?.changed()
  }

  // ---- client ----

  /**
   * The embedding and head of a model this agent uses, loaded once: from our own copy, the URL
   * hosts announce, or else the bytes of a host that holds the model.
   */
  private async ends (model: string, location?: ModelLocation): Promise<{ model: LoadedModel, ends: LocalEnds }> {
    let pending = this.clients.get(model)
    if (pending == null) {
      pending = (async () => {
        const m = this.model?.manifest === model ? this.model : await this.openRemote(model, location)
        return { model: m, ends: await loadEnds(m) }
      })()
      this.clients.set(model, pending)
      pending.catch(() => this.clients.delete(model))
    }
    return await pending
  }

  private async openRemote (model: string, location?: ModelLocation): Promise<LoadedModel> {
    const url = location ?? this.table.forModel(model).find(e => e.url != null)?.url
    if (url != null) {
      const m = await openForSwarm(url, { cache: this.cache, threads: this.opts.threads })
      if (m.manifest !== model) throw new Error(`the file at ${String(url)} is a different model version (${m.manifest.slice(0, 12)}…, wanted ${model.slice(0, 12)}…)`)
      return m
    }
    const hosts = this.table.forModel(model).filter(e => !this.bans.isBanned(e.peer)).sort((a, b) => a.load - b.load)
    if (hosts.length === 0 || this.ctx == null) throw new Error(`no peer hosts model ${model.slice(0, 12)}… and no URL is known: open the model file to use it`)
    let last: unknown
    for (const host of hosts) {
      try {
        return await openForSwarm(await this.link(host.peer, async conn => await openPeerSource(conn, model)), { trustedManifest: model, cache: this.cache, threads: this.opts.threads })
      } catch (err) {
        last = err
      }
    }
    throw new Error(`could not load the model's embedding and head from any host: ${(last as Error)?.message ?? last}`)
  }

  /** Generates through the mesh; `prompt` is text (encoded with the model's tokenizer) or token ids. */
  async generate (model: string, prompt: string | number[], opts: Omit<MeshGenerateOptions, 'stopTokens'> & { location?: ModelLocation, stopAtEos?: boolean }): Promise<MeshGenerateResult & { promptTokens: number[], text: string }> {
    const ctx = this.ctx
    if (ctx == null) throw new Error('the agent is not running')
    const { model: m, ends } = await this.ends(model, opts.location)
    const tokenizer = m.opened.tokenizer
    const promptTokens = typeof prompt === 'string' ? tokenizer.encode(prompt) : prompt
    const client = new MeshClient({
      link: this.link,
      shards: () => this.table.forModel(model),
      rtt: peer => ctx.rtt(peer),
      bans: this.bans,
      standing: this.standing,
      trust: this.opts.reputation?.trust,
      spotCheckRate: this.opts.spotCheckRate,
      payments: this.opts.payments,
      onEvidence: e => {
        void ctx.publish(EVIDENCE_TOPIC, 'shard.evidence', e)
        void this.opts.reputation?.record(e).catch(() => {})
        this.evidence.push({ ...e, by: ctx.id, ts: Date.now() })
        ctx.changed()
      }
    }, ends, model)
    const decoder = tokenizer.decoder()
    let text = ''
    const session = this.sessions.begin(model, m.opened.summary.name)
    let result: MeshGenerateResult
    try {
      result = await client.generate(promptTokens, {
        prefillDtype: this.opts.prefillDtype,
        push: this.opts.push,
        ...opts,
        stopTokens: opts.stopAtEos === false ? undefined : tokenizer.stopTokens,
        onToken: id => { session.tokens++; text += decoder.push(id); opts.onToken?.(id) },
        onRoute: (hops, reason) => { this.sessions.routed(session, hops, reason); ctx.changed(); opts.onRoute?.(hops, reason) }
      })
    } catch (err: any) {
      this.sessions.finish(session, opts.signal?.aborted === true ? 'stopped' : 'failed', String(err?.message ?? err))
      ctx.changed()
      throw err
    }
    this.sessions.finish(session, 'done')
    ctx.changed()
    text += decoder.flush()
    return { ...result, promptTokens, text }
  }

  private readonly link: Link = async (peer, use, final) => {
    const ctx = this.ctx
    if (ctx == null) throw new Error('the agent is not running')
    if (peer === ctx.id) return await use(this.selfConnection())
    return await overLink(ctx.node, peer, async () => await ctx.connect(peer), use, final)
  }

  /**
   * A libp2p agent cannot dial itself, yet the best route may run through blocks it hosts: its
   * own hops (and pushes into them) go over an in-memory stream pair to its own server, unpaid.
   */
  private selfConnection (): Connection {
    const ctx = this.ctx!
    return {
      remotePeer: ctx.node.peerId,
      newStream: async (protocol: string) => {
        const server = this.server
        if (server == null) throw new Error('this agent hosts no blocks')
        const [ours, theirs] = await streamPair()
        if (protocol === PUSH_PROTOCOL) void server.handlePush(theirs)
        else void server.handle(theirs, { remotePeer: ctx.node.peerId }, { free: true })
        return ours
      }
    } as unknown as Connection
  }

  /** Token ids of a chat, through the model's own chat template (plain text for base models). */
  async chatPrompt (model: string, messages: ChatMessage[]): Promise<number[]> {
    const { opened } = (await this.ends(model)).model
    return encodeChat(opened.model.chatTemplate, messages, opened.tokenizer)
  }

  /** The most tokens (prompt and reply together) one generation of `model` may hold. */
  async contextLength (model: string): Promise<number> {
    return (await this.ends(model)).ends.config.contextLength
  }

  /** Decodes token ids with a model's tokenizer (for streaming UIs and the OpenAI API). */
  async decoderFor (model: string): Promise<ReturnType<LoadedModel['opened']['tokenizer']['decoder']>> {
    return (await this.ends(model)).model.opened.tokenizer.decoder()
  }

  // ---- views ----

  /** What this agent hosts and has served, without the rest of `view` (cheap enough to read on every change). */
  hosting (): HostingView | undefined {
    if (this.server == null) return undefined
    const h = this.server.hosted
    return { model: h.model, name: h.name, start: h.range.first, end: h.range.last, pinned: this.pinned, stats: this.server.stats(), divergent: [...this.divergent.values()] }
  }

  /** The route of the newest generation that has one. */
  private lastRoute (): SwarmView['lastRoute'] {
    const s = this.sessions.list().find(x => x.route.length > 0)
    return s != null ? { model: s.model, hops: s.route, reason: s.reason } : undefined
  }

  view (): SwarmView {
    return {
      models: this.table.models().map(m => {
        const servers = this.table.forModel(m.model)
        return { ...m, coverage: coverage(servers, m.nLayers), missing: missingRanges(servers, m.nLayers), servers }
      }),
      hosting: this.hosting(),
      loading: this.loading,
      evidence: this.evidence.slice(),
      standing: this.standing.all(),
      trust: Object.fromEntries(this.table.all().map(e => [e.peer, this.opts.reputation?.trust(e.peer) ?? 1])),
      lastRoute: this.lastRoute(),
      sessions: this.sessions.list(),
      credits: this.opts.payments?.credits()
    }
  }
}
