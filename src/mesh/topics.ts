import { PROTOCOL_MAJOR } from '../protocol/version.ts'

/** Gossip topics carry the major version so incompatible generations never share a mesh topic. */
export const TOPICS = {
  announce: `clawnet/${PROTOCOL_MAJOR}/announce`,
  tavern: `clawnet/${PROTOCOL_MAJOR}/tavern`,
  /** Which agent hosts which blocks of which model (distributed inference). */
  shards: `clawnet/${PROTOCOL_MAJOR}/shards`,
  /** Signed spot-check evidence against peers whose outputs did not match. */
  evidence: `clawnet/${PROTOCOL_MAJOR}/evidence`,
  /** Credit chain heads and double-spend proofs. */
  ledger: `clawnet/${PROTOCOL_MAJOR}/ledger`
} as const

/**
 * The message types each topic carries. Agents and the relay refuse others (`unknown-type`), so
 * gossipsub scores down whoever publishes them rather than every agent dropping them unseen.
 */
export const TOPIC_TYPES: Readonly<Record<string, readonly string[]>> = {
  [TOPICS.announce]: ['agent.announce', 'agent.leave'],
  [TOPICS.tavern]: ['chat.message'],
  [TOPICS.shards]: ['shard.announce'],
  [TOPICS.evidence]: ['shard.evidence'],
  [TOPICS.ledger]: ['ledger.heads', 'ledger.proof']
}

/** Stream protocols (libp2p protocol ids). */
export const PROTOCOLS = {
  hello: `/clawnet/hello/${PROTOCOL_MAJOR}.0.0`,
  direct: `/clawnet/dm/${PROTOCOL_MAJOR}.0.0`
} as const
