// Two Node agents usually meet over the relay first (a relayed circuit, then WebRTC signalled
// through it, e.g. for a ledger request before either has seen the other's announce) and add a
// TCP link once an announce brings its address. libp2p keeps all of them open, and gossipsub
// keeps its streams on whichever link it saw first: gossip between two neighbours then went
// through the relay, every link paid its keep-alives, and node-datachannel's threads (ICE
// polling, SCTP timers) kept running. Measured in a four-host chain on loopback: WebRTC's threads
// alone took about a tenth of a host's CPU, and the relay about 3 ms of CPU per generated token.
import type { Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { AgentNode } from './node.ts'
import { byPreference, transportOf } from './connections.ts'
import { shouldDial } from './dialer.ts'

/** Streams that reopen on whichever link remains (gossipsub does, once that link is identified). */
const MOVABLE = /^\/meshsub\//

/** Wait after a link opens or closes: its identify and hello exchanges finish first. */
const SETTLE_MS = 1000
/** A redundant link still carrying a request (a ledger fetch, a session) is looked at again after this. */
const BUSY_RETRY_MS = 5000

export interface Redundant<C> {
  /** Links to close now. */
  close: C[]
  /** Redundant links still carrying other streams: closed once those end. */
  busy: number
}

/**
 * The links to one agent that a TCP link makes redundant. Both ends keep the same TCP link: the
 * one opened by the agent that dials (shouldDial), so two links opened at once are not both
 * closed. A link with streams other than gossip is left until they end.
 */
export function redundantLinks<C extends Pick<Connection, 'remoteAddr' | 'status' | 'direction' | 'streams'>> (conns: C[], weDial: boolean): Redundant<C> {
  const open = conns.filter(c => c.status === 'open')
  const tcp = open.filter(c => transportOf(c) === 'tcp')
  const kept = tcp.filter(c => c.direction === (weDial ? 'outbound' : 'inbound'))
  const redundant = open.filter(c => kept.length > 0 ? !kept.includes(c) : tcp.length > 0 && transportOf(c) !== 'tcp')
  const close = redundant.filter(c => c.streams.every(s => MOVABLE.test(s.protocol ?? '')))
  return { close, busy: redundant.length - close.length }
}

/** Keeps one link per Node agent pair: closes what TCP made redundant, and moves gossip onto what is left. */
export class LinkHygiene {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>()
  /** Agents that lost a link while keeping another: gossip may have run on the lost one. */
  private readonly lost = new Set<string>()
  /** Links closed as redundant since start. */
  closed = 0

  constructor (private readonly node: AgentNode, private readonly selfId: string) {}

  opened (peer: string): void {
    this.schedule(peer, SETTLE_MS)
  }

  closedLink (peer: string): void {
    this.lost.add(peer)
    this.schedule(peer, SETTLE_MS)
  }

  stop (): void {
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }

  private schedule (peer: string, delayMs: number): void {
    if (peer === this.selfId) return
    clearTimeout(this.timers.get(peer))
    this.timers.set(peer, setTimeout(() => {
      this.timers.delete(peer)
      void this.tidy(peer).catch(() => {})
    }, delayMs))
  }

  private async tidy (peer: string): Promise<void> {
    const id = peerIdFromString(peer)
    const { close, busy } = redundantLinks(this.node.getConnections(id), shouldDial(this.selfId, peer))
    for (const c of close) await c.close().catch(err => { c.abort(err) })
    this.closed += close.length
    if (close.length > 0) this.lost.add(peer)
    if (busy > 0) this.schedule(peer, BUSY_RETRY_MS)
    // gossipsub drops its stream with the link it ran on and opens another only when a link is
    // identified: without this it would stop sending to a neighbour it still counts as connected.
    // Read and cleared either way: an agent that left altogether leaves no entry behind.
    const relink = this.lost.delete(peer)
    const kept = byPreference(this.node.getConnections(id))[0]
    if (kept == null || !relink) return
    await this.node.services.identify.identify(kept).catch(() => {})
  }
}
