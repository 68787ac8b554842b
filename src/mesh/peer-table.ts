import type { AnnounceBody, Transport } from '../protocol/messages.ts'
import type { Envelope } from '../protocol/envelope.ts'
import type { PeerView } from '../peer/types.ts'

/**
 * Everyone we have heard announce within their TTL. Built only from verified announces, so
 * nothing here was asserted by anyone but the agent itself.
 */
export class PeerTable {
  private readonly peers = new Map<string, PeerView & { announceTs: number }>()

  constructor (private readonly selfId: string) {}

  /** Returns true when the table changed in a way the UI should show (new peer or new facts). */
  applyAnnounce (env: Envelope<AnnounceBody>, now = Date.now()): boolean {
    if (env.from === this.selfId) return false
    const prev = this.peers.get(env.from)
    if (prev != null && prev.announceTs >= env.ts) return false
    const b = env.body
    this.peers.set(env.from, {
      id: env.from,
      name: b.name,
      owner: b.owner,
      caps: b.caps,
      wants: b.wants,
      offers: b.offers,
      hosts: b.hosts,
      links: b.links,
      addrs: b.addrs,
      transport: prev?.transport ?? 'none',
      rttMs: prev?.rttMs,
      lastSeen: now,
      expiresAt: now + b.ttl * 1000,
      announceTs: env.ts
    })
    return true
  }

  remove (id: string): boolean {
    return this.peers.delete(id)
  }

  /** Drops agents whose announce has expired; returns the ids it dropped. */
  expire (now = Date.now()): string[] {
    const gone: string[] = []
    for (const [id, p] of this.peers) {
      if (p.expiresAt <= now) {
        this.peers.delete(id)
        gone.push(id)
      }
    }
    return gone
  }

  setLink (id: string, transport: Transport, rttMs?: number): boolean {
    const p = this.peers.get(id)
    if (p == null || (p.transport === transport && (rttMs === undefined || p.rttMs === rttMs))) return false
    p.transport = transport
    if (rttMs !== undefined) p.rttMs = rttMs
    if (transport === 'none') p.rttMs = undefined
    return true
  }

  markIncompatible (id: string, reason: string): void {
    const p = this.peers.get(id)
    if (p != null) p.incompatible = reason
  }

  get (id: string): PeerView | undefined {
    const p = this.peers.get(id)
    if (p == null) return undefined
    const { announceTs, ...view } = p
    return view
  }

  has (id: string): boolean {
    return this.peers.has(id)
  }

  ids (): string[] {
    return [...this.peers.keys()]
  }

  list (): PeerView[] {
    return [...this.peers.keys()].map(id => this.get(id)!).sort((a, b) => a.name.localeCompare(b.name))
  }
}
