import type { Connection } from '@libp2p/interface'
import type { Transport } from '../protocol/messages.ts'

/**
 * How a connection really travels, read from its remote address: a `/p2p-circuit` that is
 * not followed by `/webrtc` goes through the relay; `/webrtc` after the circuit is the direct
 * WebRTC link the circuit only helped to set up.
 */
export function transportOf (conn: Pick<Connection, 'remoteAddr'>): Transport {
  const addr = conn.remoteAddr.toString()
  const circuit = addr.lastIndexOf('/p2p-circuit')
  const webrtc = addr.lastIndexOf('/webrtc')
  if (webrtc >= 0 && webrtc > circuit) return 'webrtc'
  if (circuit >= 0) return 'relayed'
  if (/\/wss?(\/|$)/.test(addr)) return 'websocket'
  if (addr.includes('/tcp/')) return 'tcp'
  return 'none'
}

/** A link that carries data peer to peer, not through the relay. */
export function isDirect (t: Transport): boolean {
  return t === 'tcp' || t === 'webrtc'
}

// TCP first: between Node agents it is the leaner of the two direct links.
const PREFERENCE: Transport[] = ['tcp', 'webrtc', 'websocket', 'relayed', 'none']

/** The open ones of several connections to one peer, best first (a relayed one usually stays open beside WebRTC). */
export function byPreference<C extends Pick<Connection, 'remoteAddr' | 'status'>> (conns: C[]): C[] {
  return conns.filter(c => c.status === 'open')
    .map(c => ({ c, rank: PREFERENCE.indexOf(transportOf(c)) }))
    .sort((a, b) => a.rank - b.rank)
    .map(x => x.c)
}

/** The transport of the best of several connections to one peer. */
export function bestTransport (conns: Array<Pick<Connection, 'remoteAddr' | 'status'>>): Transport {
  const best = byPreference(conns)[0]
  return best == null ? 'none' : transportOf(best)
}
