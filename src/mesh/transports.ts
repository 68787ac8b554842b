// Node agents: direct TCP links besides WebRTC. Between two Node peers a TCP link skips WebRTC's
// SCTP stack (node-datachannel), which on loopback added 1-4 ms to every round trip; a hidden
// state crossing a chain of hosts pays that once per hop and token.
import { tcp } from '@libp2p/tcp'
import type { Libp2pOptions } from 'libp2p'

/** Whether this platform can dial the TCP addresses other Node agents announce. */
export const canDialTcp = true

export function directTransports (): NonNullable<Libp2pOptions['transports']> {
  return [tcp()]
}
