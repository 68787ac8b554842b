import type { SpotCheckEvidence } from './messages.ts'

/**
 * What routing learns from the agent's reputation system (the ledger's EigenTrust), kept behind a
 * port so the swarm core does not depend on the ledger. Without one, every peer counts as 1.
 */
export interface ReputationPort {
  /**
   * Trust in a peer relative to the mesh, 0..1: 1 for a peer nobody has an opinion of or an
   * ordinary one; lower for peers that ratings and spot-check evidence count against.
   */
  trust: (peer: string) => number
  /** Our own spot-check evidence, recorded (signed) where ratings are kept. */
  record: (evidence: SpotCheckEvidence) => Promise<void>
}
