import type { AnnounceBody, Capabilities, LinkInfo, Transport } from '../protocol/messages.ts'
import type { RejectCounts, Rejection } from '../mesh/inbox.ts'

/** What the UI and the HTTP API see of an agent: plain data, safe to serialise. */
/** What every agent says of itself in its announce. */
export interface AgentFacts {
  id: string
  name: string
  owner?: string
  caps: Capabilities
  wants: string[]
  offers: string[]
}

export interface SelfView extends AgentFacts {
  /** The relay this agent reaches the mesh through, and whether that link is up now. */
  relay: { addr?: string, connected: boolean }
  startedAt: number
}

export interface PeerView extends AgentFacts {
  hosts: AnnounceBody['hosts']
  /** Links this peer reported in its last announce (who it is connected to, and how). */
  links: LinkInfo[]
  /** Where it said it can be dialed. */
  addrs?: string[]
  /** How we are connected to it right now. */
  transport: Transport
  rttMs?: number
  lastSeen: number
  expiresAt: number
  /** Set when its protocol major version differs: we keep no link with it. */
  incompatible?: string
}

export interface ChatView {
  id: string
  from: string
  fromName: string
  to?: string
  text: string
  ts: number
  /** 'tavern' for the public room, 'direct' for a message between two agents. */
  kind: 'tavern' | 'direct'
  mine: boolean
}

export interface DiagnosticsView {
  accepted: number
  rejected: RejectCounts
  recent: Rejection[]
  /** Links to other agents closed because a TCP link to the same agent made them redundant. */
  redundantLinksClosed: number
  /** Neighbours gossip had no stream to (see mesh/gossip-repair.ts): identifies sent, streams back. */
  gossipRepairs: { attempts: number, repaired: number }
}

export interface AgentSnapshot {
  self: SelfView
  peers: PeerView[]
  tavern: ChatView[]
  diagnostics: DiagnosticsView
}

export type AgentEvent = 'change' | 'chat' | 'reject'
