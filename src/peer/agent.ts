import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import { LIMITS } from '../protocol/limits.ts'
import { createAgentNode, type AgentNode } from '../mesh/node.ts'
import { Inbox } from '../mesh/inbox.ts'
import { PeerTable } from '../mesh/peer-table.ts'
import { RttSamples } from '../mesh/rtt.ts'
import { ChatLog } from '../mesh/chat-log.ts'
import { Emitter } from '../mesh/emitter.ts'
import { RelayLink } from '../mesh/relay-link.ts'
import { bestTransport } from '../mesh/connections.ts'
import { canImprove, candidateAddrs, connectTo, isTcpAddr, overLink, shouldDial } from '../mesh/dialer.ts'
import { answerHello, sayHello, type HelloRefusal } from '../mesh/hello.ts'
import { DirectRefused, receiveDirect, sendDirectEnvelope } from '../mesh/direct.ts'
import { PROTOCOLS, TOPICS, TOPIC_TYPES } from '../mesh/topics.ts'
import { encodeEnvelope, signEnvelope, type Envelope, type Signer } from '../protocol/envelope.ts'
import type { AnnounceBody, Capabilities, ChatBody, LinkInfo } from '../protocol/messages.ts'
import { normaliseProfile, type Identity, type Profile } from './identity.ts'
import type { AgentHandle, ProfileUpdate } from './handle.ts'
import type { AgentEvent, AgentSnapshot, ChatView } from './types.ts'
import type { AgentContext, AgentService } from './service.ts'
import { startTicker } from './ticker.ts'
import { LinkHygiene } from '../mesh/link-hygiene.ts'
import { GossipRepair, GOSSIP_REPAIR_EVERY_MS } from '../mesh/gossip-repair.ts'

export interface AgentOptions {
  identity: Identity
  saveProfile: (profile: Profile) => Promise<void>
  relayAddrs: string[]
  capabilities: Capabilities
  iceServers?: RTCIceServer[]
  /** Node: TCP listen multiaddrs for direct links to other Node agents (none unless given). */
  listen?: string[]
  /** How often the agent re-announces itself; peers drop it after three missed announces. */
  announceIntervalMs?: number
  /** Composed services (ledger, shard server, …), started after the mesh is wired. */
  services?: AgentService[]
}

const TICK_MS = 1000
const PING_EVERY_MS = 5000

/**
 * An agent in the mesh: the same code runs in a browser tab and in a headless Node peer.
 * It announces itself, keeps the peer table, talks in the tavern and by direct message,
 * and keeps a link with every agent it hears of (WebRTC where possible, relayed otherwise).
 */
export class Agent implements AgentHandle {
  readonly id: string
  readonly node: AgentNode
  private profile: Profile
  private readonly signer: Signer
  private readonly inbox: Inbox
  private readonly table: PeerTable
  private readonly chat = new ChatLog()
  private readonly events = new Emitter<AgentEvent>()
  private readonly relay: RelayLink
  private readonly announceMs: number
  private readonly rtts = new RttSamples()
  private readonly hygiene: LinkHygiene
  private readonly gossipRepair: GossipRepair
  private readonly dialing = new Set<string>()
  private readonly startedAt = Date.now()
  private stopTicker?: () => void
  private readonly jobs: Array<{ everyMs: number, due: number, run: () => void | Promise<void> }> = []
  private lastAnnounce = 0
  private lastPing = 0
  private announceSoonTimer?: ReturnType<typeof setTimeout>
  private readonly newPeerListeners: Array<(peerId: string) => void> = []
  private readonly leftPeerListeners: Array<(peerId: string) => void> = []
  private readonly topics = new Map<string, { onEnvelope: (env: Envelope) => void | Promise<void>, maxBytes: number }>()
  private readonly services: AgentService[]

  private constructor (node: AgentNode, private readonly opts: AgentOptions) {
    this.node = node
    this.id = node.peerId.toString()
    this.profile = opts.identity.profile
    this.signer = { peerId: this.id, privateKey: opts.identity.privateKey }
    this.inbox = new Inbox(() => this.events.emit('reject'))
    this.table = new PeerTable(this.id)
    this.announceMs = opts.announceIntervalMs ?? 10_000
    this.relay = new RelayLink(node, opts.relayAddrs, () => this.changed())
    this.hygiene = new LinkHygiene(node, this.id)
    this.gossipRepair = new GossipRepair(node)
    this.services = opts.services ?? []
  }

  static async start (opts: AgentOptions): Promise<Agent> {
    const node = await createAgentNode({ privateKey: opts.identity.privateKey, iceServers: opts.iceServers, listen: opts.listen })
    const agent = new Agent(node, opts)
    await agent.wire()
    return agent
  }

  private async wire (): Promise<void> {
    const { node } = this
    const pubsub = node.services.pubsub
    pubsub.addEventListener('message', evt => {
      const msg = evt.detail
      const sender = msg.type === 'signed' ? msg.from.toString() : undefined
      void this.onGossip(msg.topic, msg.data, sender)
    })
    const ctx = this.context()
    ctx.subscribe(TOPICS.announce, env => { this.onAnnounceTopic(env) })
    ctx.subscribe(TOPICS.tavern, env => { this.record(env as Envelope<ChatBody>, 'tavern') })
    // A newcomer on the announce topic learns about us at once instead of at our next interval.
    pubsub.addEventListener('subscription-change', evt => {
      if (evt.detail.subscriptions.some(s => s.topic === TOPICS.announce && s.subscribe)) this.announceSoon()
    })
    await node.handle(PROTOCOLS.hello, (stream: Stream, conn: Connection) => {
      void answerHello(stream, async () => await this.signAnnounce(),
        async bytes => { await this.onAnnounceBytes(bytes, conn.remotePeer.toString()) },
        refusal => { this.refuse(conn, refusal) }).catch(() => {})
    }, { runOnLimitedConnection: true })
    await node.handle(PROTOCOLS.direct, (stream: Stream, conn: Connection) => {
      void receiveDirect(stream, async bytes => await this.onDirectBytes(bytes, conn.remotePeer.toString())).catch(() => {})
    }, { runOnLimitedConnection: true })
    node.addEventListener('connection:open', evt => {
      const conn = evt.detail
      const peer = conn.remotePeer.toString()
      if (!this.relay.isRelay(peer)) {
        if (conn.direction === 'outbound') void this.hello(conn)
        this.hygiene.opened(peer)
      }
      this.refreshLinks()
    })
    node.addEventListener('connection:close', evt => {
      const peer = evt.detail.remotePeer.toString()
      if (!this.relay.isRelay(peer)) this.hygiene.closedLink(peer)
      this.refreshLinks()
    })
    for (const service of this.services) await service.start(ctx)
    this.relay.start()
    ctx.every(GOSSIP_REPAIR_EVERY_MS, () => { this.gossipRepair.check() })
    this.stopTicker = startTicker(TICK_MS, () => { void this.tick() })
    // pubsub's first messages are often lost while the mesh forms: announce early and often at start.
    for (const ms of [300, 1200, 2500]) setTimeout(() => { void this.announce() }, ms)
  }

  // ---- outgoing ----

  private async signAnnounce (): Promise<Envelope<AnnounceBody>> {
    const own = this.node.getMultiaddrs().map(a => a.toString())
    // A few TCP listeners (Node agents) ahead of the circuit addresses every agent has.
    const addrs = [...own.filter(isTcpAddr).slice(0, 3), ...own.filter(a => a.includes('/p2p-circuit'))].slice(0, 8)
    return await signEnvelope(this.signer, 'agent.announce', {
      name: this.profile.name,
      owner: this.profile.owner,
      caps: this.opts.capabilities,
      wants: this.profile.wants,
      offers: this.profile.offers,
      hosts: [],
      links: this.links(),
      addrs,
      ttl: Math.ceil((this.announceMs * 3) / 1000)
    })
  }

  private async publish (topic: string, env: Envelope): Promise<void> {
    try {
      await this.node.services.pubsub.publish(topic, encodeEnvelope(env))
    } catch {
      // No subscribed peers yet: the periodic announce and newcomer trigger cover it.
    }
  }

  private async announce (): Promise<void> {
    this.lastAnnounce = Date.now()
    await this.publish(TOPICS.announce, await this.signAnnounce())
  }

  private announceSoon (): void {
    clearTimeout(this.announceSoonTimer)
    this.announceSoonTimer = setTimeout(() => { void this.announce() }, 250)
  }

  async sendTavern (text: string): Promise<void> {
    const env = await signEnvelope(this.signer, 'chat.message', { text })
    this.record(env, 'tavern')
    await this.publish(TOPICS.tavern, env)
  }

  async sendDirect (to: string, text: string): Promise<void> {
    if (to === this.id) throw new Error('cannot send a direct message to yourself')
    const peer = this.table.get(to)
    if (peer == null) throw new Error(`unknown agent ${to}: it has not announced itself (or has left)`)
    const env = await signEnvelope(this.signer, 'chat.direct', { text }, { to })
    let tries = 0
    await overLink(this.node, to, async () => await connectTo(this.node, to, candidateAddrs(to, peer.addrs ?? [], this.relay.addrs)), async conn => {
      try {
        await sendDirectEnvelope(conn, env)
      } catch (err) {
        // The same envelope refused as a replay on a later try: an earlier one arrived, only its ack was lost.
        if (tries > 0 && err instanceof DirectRefused && err.reason === 'replay') return
        throw err
      } finally {
        tries++
      }
    }, err => err instanceof DirectRefused)
    this.record(env, 'direct')
  }

  async setProfile (update: ProfileUpdate): Promise<void> {
    this.profile = normaliseProfile(update, this.profile)
    await this.opts.saveProfile(this.profile)
    this.changed()
    await this.announce()
  }

  /** Best-effort goodbye so others drop us now rather than when our announce expires. */
  async leave (): Promise<void> {
    await this.publish(TOPICS.announce, await signEnvelope(this.signer, 'agent.leave', {}))
  }

  async stop (): Promise<void> {
    this.stopTicker?.()
    this.hygiene.stop()
    clearTimeout(this.announceSoonTimer)
    this.relay.stop()
    for (const service of [...this.services].reverse()) await service.stop().catch(() => {})
    await this.leave().catch(() => {})
    await this.node.stop()
  }

  // ---- incoming ----

  private async onGossip (topic: string, data: Uint8Array, sender?: string): Promise<void> {
    const sub = this.topics.get(topic)
    if (sub == null) return
    const env = await this.inbox.accept(data, { transportFrom: sender, senderMustMatch: true, maxBytes: sub.maxBytes, types: TOPIC_TYPES[topic] })
    if (env != null) await sub.onEnvelope(env)
  }

  private onAnnounceTopic (env: Envelope): void {
    if (env.type === 'agent.announce') {
      this.applyAnnounce(env as Envelope<AnnounceBody>)
      return
    }
    // agent.leave: the only other type this topic carries.
    if (this.table.remove(env.from)) this.changed()
    for (const l of this.leftPeerListeners) l(env.from)
  }

  private async onAnnounceBytes (bytes: Uint8Array, remote: string): Promise<void> {
    const env = await this.inbox.accept(bytes, { transportFrom: remote, senderMustMatch: true })
    if (env == null) return
    if (env.type !== 'agent.announce') {
      this.inbox.reject('unknown-type', `hello from ${remote} carried ${env.type}`, remote)
      return
    }
    this.applyAnnounce(env as Envelope<AnnounceBody>)
  }

  private async onDirectBytes (bytes: Uint8Array, remote: string): Promise<string | undefined> {
    const d = await this.inbox.admit(bytes, { transportFrom: remote, senderMustMatch: true })
    if (!d.ok) return d.reason
    const env = d.env
    if (env.type !== 'chat.direct') {
      this.inbox.reject('unknown-type', `${env.type} sent on the direct-message protocol`, remote)
      return 'unknown-type'
    }
    if (env.to !== this.id) {
      this.inbox.reject('wrong-recipient', `addressed to ${String(env.to)}`, remote)
      return 'wrong-recipient'
    }
    this.record(env as Envelope<ChatBody>, 'direct')
    return undefined
  }

  private applyAnnounce (env: Envelope<AnnounceBody>): void {
    const isNew = !this.table.has(env.from)
    if (!this.table.applyAnnounce(env)) return
    this.refreshLinks()
    this.changed()
    if (isNew) {
      this.announceSoon()
      for (const l of this.newPeerListeners) l(env.from)
    }
    void this.ensureLink(env.from, env.body.addrs ?? [])
  }

  private record (env: Envelope<ChatBody>, kind: ChatView['kind']): void {
    const mine = env.from === this.id
    this.chat.add({
      id: env.id,
      from: env.from,
      fromName: mine ? this.profile.name : (this.table.get(env.from)?.name ?? `${env.from.slice(-6)}`),
      to: env.to,
      text: env.body.text,
      ts: env.ts,
      kind,
      mine
    })
    this.events.emit('chat')
  }

  // ---- links ----

  private async hello (conn: Connection): Promise<void> {
    try {
      const res = await sayHello(conn, await this.signAnnounce(), AbortSignal.timeout(10_000))
      if (res.ok) await this.onAnnounceBytes(res.announce, conn.remotePeer.toString())
      else this.refuse(conn, res.refusal)
    } catch {
      // Not an agent (or it went away): nothing to learn from this connection.
    }
  }

  private refuse (conn: Connection, refusal: HelloRefusal): void {
    const remote = conn.remotePeer.toString()
    this.inbox.reject('wrong-version', refusal.detail, remote)
    this.table.markIncompatible(remote, refusal.detail)
    void conn.close().catch(() => {})
    this.changed()
  }

  private async ensureLink (peerId: string, announced: string[]): Promise<void> {
    if (!shouldDial(this.id, peerId) || this.dialing.has(peerId) || this.table.get(peerId)?.incompatible != null) return
    const addrs = candidateAddrs(peerId, announced, this.relay.addrs)
    if (!canImprove(bestTransport(this.node.getConnections(peerIdFromString(peerId))), addrs)) return
    this.dialing.add(peerId)
    try {
      await connectTo(this.node, peerId, addrs)
    } catch {
      // Retried on its next announce.
    } finally {
      this.dialing.delete(peerId)
      this.refreshLinks()
    }
  }

  private links (): LinkInfo[] {
    return this.table.list().filter(p => p.transport !== 'none').map(p => ({ peer: p.id, transport: p.transport, rttMs: p.rttMs }))
  }

  private refreshLinks (): void {
    let changed = false
    for (const id of this.table.ids()) {
      const t = bestTransport(this.node.getConnections(peerIdFromString(id)))
      if (this.table.setLink(id, t, t === 'none' ? undefined : this.rtts.get(id))) changed = true
    }
    if (changed) this.changed()
  }

  private async measureRtt (id: string): Promise<void> {
    try {
      const ms = await this.node.services.ping.ping(peerIdFromString(id), { signal: AbortSignal.timeout(3000), runOnLimitedConnection: true } as any)
      this.rtts.add(id, ms)
    } catch {
      this.rtts.delete(id)
    }
  }

  private async measureRtts (): Promise<void> {
    await Promise.all(this.table.ids()
      .filter(id => bestTransport(this.node.getConnections(peerIdFromString(id))) !== 'none')
      .map(async id => { await this.measureRtt(id) }))
    this.refreshLinks()
  }

  private async tick (): Promise<void> {
    const now = Date.now()
    const gone = this.table.expire(now)
    for (const id of gone) this.rtts.delete(id)
    if (gone.length > 0) this.changed()
    if (now - this.lastAnnounce >= this.announceMs) await this.announce()
    if (now - this.lastPing >= PING_EVERY_MS) {
      this.lastPing = now
      await this.measureRtts()
    }
    for (const job of this.jobs) {
      if (job.due > now) continue
      job.due = now + job.everyMs
      try { await job.run() } catch (err) { console.error('periodic job failed', err) }
    }
  }

  // ---- composition ----

  private context (): AgentContext {
    return {
      id: this.id,
      node: this.node,
      signer: this.signer,
      inbox: this.inbox,
      peers: () => this.table.list(),
      sign: async (type, body, to) => await signEnvelope(this.signer, type, body, { to }),
      publish: async (topic, type, body) => {
        const env = await signEnvelope(this.signer, type, body)
        await this.publish(topic, env)
        return env
      },
      subscribe: (topic, onEnvelope, maxBytes = LIMITS.maxEnvelopeBytes) => {
        this.topics.set(topic, { onEnvelope, maxBytes })
        this.node.services.pubsub.subscribe(topic)
      },
      handle: async (protocol, handler) => {
        await this.node.handle(protocol, (stream: Stream, conn: Connection) => {
          void handler(stream, conn).catch(() => { stream.abort(new Error(`${protocol} handler failed`)) })
        }, { runOnLimitedConnection: true })
      },
      connect: async peerId => await connectTo(this.node, peerId, candidateAddrs(peerId, this.table.get(peerId)?.addrs ?? [], this.relay.addrs)),
      changed: () => { this.changed() },
      every: (ms, run) => { this.jobs.push({ everyMs: ms, due: Date.now() + ms, run }) },
      rtt: peerId => this.rtts.get(peerId),
      onNewPeer: listener => { this.newPeerListeners.push(listener) },
      onPeerLeft: listener => { this.leftPeerListeners.push(listener) }
    }
  }

  /** A composed service by name, for the UI and the API (e.g. the ledger). */
  service<T extends AgentService> (name: string): T | undefined {
    return this.services.find(s => s.name === name) as T | undefined
  }

  // ---- views ----

  private changed (): void {
    this.events.emit('change')
  }

  on (event: AgentEvent, listener: () => void): () => void {
    return this.events.on(event, listener)
  }

  snapshot (): AgentSnapshot {
    return {
      self: {
        id: this.id,
        name: this.profile.name,
        owner: this.profile.owner,
        caps: this.opts.capabilities,
        wants: this.profile.wants,
        offers: this.profile.offers,
        relay: { addr: this.relay.addrs[0]?.toString(), connected: this.relay.connected() },
        startedAt: this.startedAt
      },
      peers: this.table.list(),
      tavern: this.chat.list(),
      diagnostics: { accepted: this.inbox.accepted, rejected: { ...this.inbox.counts }, recent: this.inbox.recent.slice(), redundantLinksClosed: this.hygiene.closed, gossipRepairs: { attempts: this.gossipRepair.attempts, repaired: this.gossipRepair.repaired } }
    }
  }
}
