import { PROTOCOL_MAJOR } from '../protocol/version.ts'

/** Gossip topics carry the major version so incompatible generations never share a mesh topic. */
export const TOPICS = {
  announce: `clawnet/${PROTOCOL_MAJOR}/announce`,
  tavern: `clawnet/${PROTOCOL_MAJOR}/tavern`
} as const

/** Stream protocols (libp2p protocol ids). */
export const PROTOCOLS = {
  hello: `/clawnet/hello/${PROTOCOL_MAJOR}.0.0`,
  direct: `/clawnet/dm/${PROTOCOL_MAJOR}.0.0`
} as const
