import type { Connection, Stream } from '@libp2p/interface'
import type { Envelope, Signer } from '../protocol/envelope.ts'
import type { AgentNode } from '../mesh/node.ts'
import type { Inbox } from '../mesh/inbox.ts'
import type { PeerView } from './types.ts'

/**
 * What an agent lends the services composed into it (ledger, shard server, autonomous loop):
 * verified gossip on their own topics, stream protocols, links to peers, and its signature.
 * Services never reach into the agent's internals, as js-libp2p services never reach into libp2p's.
 */
export interface AgentContext {
  readonly id: string
  readonly node: AgentNode
  readonly signer: Signer
  readonly inbox: Inbox
  peers: () => PeerView[]
  sign: (type: string, body: unknown, to?: string) => Promise<Envelope>
  /** Signs and publishes on a topic; fine when nobody listens yet. */
  publish: (topic: string, type: string, body: unknown) => Promise<Envelope>
  /**
   * Subscribes to a topic. Only envelopes that passed the inbox (size, signature, version,
   * replay, rate, and signed by their publisher) reach `onEnvelope`.
   */
  subscribe: (topic: string, onEnvelope: (env: Envelope) => void | Promise<void>, maxBytes?: number) => void
  /** Registers a stream protocol; it runs on relayed connections too. */
  handle: (protocol: string, handler: (stream: Stream, conn: Connection) => Promise<void>) => Promise<void>
  /** A connection to an agent (direct WebRTC where possible, relayed otherwise). */
  connect: (peerId: string) => Promise<Connection>
  /** Tells the UI and the API that something they show has changed. */
  changed: () => void
  /**
   * Runs `run` every `ms` (at 1 s granularity) on the agent's heartbeat, which keeps ticking in
   * hidden browser tabs; services should not start timers of their own for periodic work.
   */
  every: (ms: number, run: () => void | Promise<void>) => void
  /** Called when an agent appears in the peer table, so services can greet it with their state. */
  onNewPeer: (listener: (peerId: string) => void) => void
  /** Called when an agent says goodbye (not when its announce merely lapses: that may be a gossip hiccup). */
  onPeerLeft: (listener: (peerId: string) => void) => void
  /** Last measured round-trip time to a peer, ms. */
  rtt: (peerId: string) => number | undefined
}

export interface AgentService {
  readonly name: string
  start: (ctx: AgentContext) => Promise<void>
  stop: () => Promise<void>
}
