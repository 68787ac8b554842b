import type { Connection, PeerId } from '@libp2p/interface'
import { byPreference } from './connections.ts'

/** What the repair needs of a node: gossipsub's neighbours and the streams it sends on, the links, identify. */
export interface GossipNode {
  getConnections: (peer?: PeerId) => Connection[]
  services: {
    pubsub: { getPeers: () => PeerId[] }
    identify: { identify: (conn: Connection) => Promise<unknown> }
  }
}

/** How often agents and the relay look. */
export const GOSSIP_REPAIR_EVERY_MS = 5000
/** How long a neighbour may lack a stream before we step in: gossipsub opens them one peer at a time, 3 s each at worst. */
const GRACE_MS = 10_000
/** Longest wait between two tries for one neighbour (one that never takes our stream costs an identify this often). */
const MAX_BACKOFF_MS = 120_000

interface Missing { tries: number, next: number }

/**
 * gossipsub (17.x) opens its stream to a neighbour when a link to it is identified, and never
 * again: a stream whose protocol negotiation timed out (a host busy loading weights, a tab in
 * the background) was only logged, and we went on counting the neighbour as connected while
 * sending it nothing: no announces, no ledger blocks, until the link itself closed. Identifying
 * the link again makes gossipsub try once more; neighbours that keep failing are tried less
 * and less often.
 */
export class GossipRepair {
  private readonly missing = new Map<string, Missing>()
  /** Identifies sent to reopen a stream. */
  attempts = 0
  /** Neighbours whose stream came back after we stepped in. */
  repaired = 0

  constructor (private readonly node: GossipNode) {}

  /** Looks at every neighbour once; call it every few seconds. */
  check (now = Date.now()): void {
    const { pubsub } = this.node.services
    const streams = outboundStreams(pubsub)
    if (streams == null) return
    const stranded = new Map(pubsub.getPeers().filter(p => !streams.has(p.toString())).map(p => [p.toString(), p]))
    for (const [id, m] of this.missing) {
      if (stranded.has(id)) continue
      this.missing.delete(id)
      // Gone from gossipsub altogether (the agent left) is not a repair.
      if (m.tries > 0 && streams.has(id)) this.repaired++
    }
    for (const [id, peer] of stranded) {
      const m = this.missing.get(id)
      if (m == null) {
        this.missing.set(id, { tries: 0, next: now + GRACE_MS })
        continue
      }
      if (now < m.next) continue
      const link = byPreference(this.node.getConnections(peer))[0]
      if (link == null) continue
      m.tries++
      m.next = now + Math.min(GRACE_MS * 2 ** m.tries, MAX_BACKOFF_MS)
      this.attempts++
      void this.node.services.identify.identify(link).catch(() => {})
    }
  }
}

/**
 * gossipsub's streams to its neighbours, by peer id: public on its class but not in the interface
 * it exports (17.x). Should a release drop it, the repair stands down and gossip-repair.test.ts fails.
 */
export function outboundStreams (pubsub: object): Map<string, unknown> | undefined {
  const streams = (pubsub as { streamsOutbound?: unknown }).streamsOutbound
  return streams instanceof Map ? streams : undefined
}
