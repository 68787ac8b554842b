// Browsers cannot open TCP sockets: they reach other agents over WebRTC or the relay only.
import type { Libp2pOptions } from 'libp2p'

export const canDialTcp = false

export function directTransports (): NonNullable<Libp2pOptions['transports']> {
  return []
}
