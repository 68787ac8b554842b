// Routing's reputation port on the ledger's EigenTrust: our spot-check evidence becomes signed
// evidence there, and trust is the peer's global score relative to an even share.
import type { PrivateKey } from '@libp2p/interface'
import { signEvidence } from '../../ledger/reputation.ts'
import type { ReputationPort } from '../../swarm/reputation-port.ts'
import type { LedgerService } from './ledger-service.ts'

/** Trust never reaches 0, so a peer can still be used when it is the only one left. */
const FLOOR = 0.05

export function ledgerReputation (svc: LedgerService, key: PrivateKey): ReputationPort {
  return {
    trust (peer) {
      const rep = svc.reputation
      if (!rep.known(peer)) return 1
      const scores = rep.scores()
      const share = (scores.get(peer) ?? 0) * Math.max(scores.size, 1)
      return Math.min(1, Math.max(FLOOR, share))
    },
    async record (e) {
      await svc.reputation.addEvidence(await signEvidence({
        checker: svc.ledger.id,
        accused: e.accused,
        session: e.inputDigest.slice(0, 32),
        step: 0,
        expected: e.referenceDigest,
        got: e.accusedDigest,
        ts: Date.now()
      }, key))
    }
  }
}
