import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection } from '@libp2p/interface'
import type { AgentNode } from './node.ts'
import { byPreference, isDirect, transportOf } from './connections.ts'
import type { Transport } from '../protocol/messages.ts'
import { canDialTcp } from './transports.ts'

/** A plain TCP listen address (not the relay's WebSocket, not a circuit through it). */
export function isTcpAddr (a: string): boolean {
  return a.includes('/tcp/') && !a.includes('/p2p-circuit') && !/\/wss?(\/|$)/.test(a)
}

/**
 * Candidate addresses for an agent, best first: its own TCP listeners (Node to Node), direct
 * WebRTC (signalled through a relay), then the relayed circuit itself. Relayed addresses in
 * announces and the peer store can lack the trailing /p2p/<id>; dialing such an address
 * silently returns the relay connection.
 */
export function candidateAddrs (peerId: string, announced: string[], relayAddrs: Multiaddr[], tcp = canDialTcp): Multiaddr[] {
  const withId = (a: string): string => a.endsWith(`/p2p/${peerId}`) ? a : `${a}/p2p/${peerId}`
  const fromRelays = relayAddrs.flatMap(r => [`${r.toString()}/p2p-circuit/webrtc`, `${r.toString()}/p2p-circuit`])
  const direct = tcp ? announced.filter(isTcpAddr).map(withId) : []
  const all = [...announced.filter(a => a.includes('/p2p-circuit')), ...fromRelays].map(withId)
  const webrtc = all.filter(a => a.includes('/p2p-circuit/webrtc'))
  const circuit = all.filter(a => !a.includes('/webrtc'))
  return [...new Set([...direct, ...webrtc, ...circuit])].map(a => multiaddr(a))
}

/** Agents whose TCP addresses did not answer, and when: not tried again for a while. */
const tcpFailures = new WeakMap<AgentNode, Map<string, number>>()
const TCP_RETRY_MS = 5 * 60_000

/** One side of each pair dials (the smaller id), so two agents never race to open two links. */
export function shouldDial (selfId: string, otherId: string): boolean {
  return selfId < otherId
}

/**
 * Opens a connection to an agent, retrying: a few percent of WebRTC dials hang until timeout
 * under load. Falls back to the relayed circuit where no direct link can be made.
 */
export async function connectTo (node: AgentNode, peerId: string, addrs: Multiaddr[], opts: { attempts?: number, timeoutMs?: number } = {}): Promise<Connection> {
  const existing = byPreference(node.getConnections(peerIdFromString(peerId))).find(c => isDirect(transportOf(c)))
  let failed = tcpFailures.get(node)
  if (failed == null) tcpFailures.set(node, failed = new Map())
  const candidates = Date.now() - (failed.get(peerId) ?? -Infinity) < TCP_RETRY_MS ? addrs.filter(a => !isTcpAddr(a.toString())) : addrs
  if (existing != null && !canImprove(transportOf(existing), candidates)) return existing
  let lastErr: unknown
  // Exhaust the direct addresses before settling for a relayed circuit (or keeping the WebRTC
  // link a TCP address could not replace).
  for (const addr of existing != null ? candidates.filter(a => isTcpAddr(a.toString())) : candidates) {
    // A TCP address either answers at once or is not reachable from here (a loopback or LAN
    // address announced to the whole mesh): one short try, then WebRTC.
    const tcp = isTcpAddr(addr.toString())
    const attempts = tcp ? 1 : opts.attempts ?? 3
    for (let i = 0; i < attempts; i++) {
      try {
        // `force`: libp2p would otherwise hand back the WebRTC link this dial means to replace.
        return await node.dial(addr, { signal: AbortSignal.timeout(tcp ? 3000 : opts.timeoutMs ?? 10_000), force: existing != null })
      } catch (err) {
        lastErr = err
        if (tcp) failed.set(peerId, Date.now())
        await new Promise(resolve => setTimeout(resolve, 250 * (i + 1)))
      }
    }
  }
  if (existing != null) return existing
  throw new Error(`cannot reach ${peerId}: ${(lastErr as Error)?.message ?? 'no address'}`)
}

/**
 * A link worth replacing: any that is not direct, and a WebRTC one where the agent has a TCP
 * address (two Node agents can find each other over WebRTC before either has heard the other's
 * TCP addresses; every hidden state pushed between them would then pay for it).
 */
export function canImprove (current: Transport, addrs: Array<Multiaddr | string>): boolean {
  if (current === 'tcp') return false
  if (current !== 'webrtc') return true
  return addrs.some(a => isTcpAddr(a.toString()))
}

/** `overLink` bound to an agent's node and dialer: what services that talk to peers are given. */
export type Link = <T>(peer: string, use: (conn: Connection) => Promise<T>, final?: (err: unknown) => boolean) => Promise<T>

/**
 * Runs `use` over a link to an agent now: an open connection (a direct one first, a relayed one will
 * do) so a small message never waits on a WebRTC dial. A listed connection can die before it is
 * used (a relayed link closing as WebRTC replaces it, a data channel failing), so each open one
 * is tried in turn and then a freshly dialed one. An error `final` accepts ends the tries.
 */
export async function overLink<T> (node: AgentNode, peerId: string, dial: () => Promise<Connection>, use: (conn: Connection) => Promise<T>,
  final: (err: unknown) => boolean = () => false): Promise<T> {
  // Best first: a Node pair can hold TCP, WebRTC and relayed links at once, and WebRTC under
  // Node (usrsctp, DTLS, their threads) costs several times the CPU of TCP per message.
  const ordered = byPreference(node.getConnections(peerIdFromString(peerId)))
  const errors: string[] = []
  for (const conn of ordered) {
    try {
      return await use(conn)
    } catch (err: any) {
      if (final(err)) throw err
      errors.push(`${transportOf(conn)}: ${err?.message ?? err}`)
    }
  }
  try {
    return await use(await dial())
  } catch (err: any) {
    if (final(err) || errors.length === 0) throw err
    throw new Error([...errors, String(err?.message ?? err)].join('; '))
  }
}
