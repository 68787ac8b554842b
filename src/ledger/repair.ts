// Rebuilds a damaged ledger from the records that survived. Every salvaged block is verified
// again as if a peer had sent it; one that no longer follows from what was kept (its
// predecessor sat in the damaged bytes) is left out, to be fetched again from peers like any
// block an agent lacks. The agent's own lost blocks come back the same way before it signs
// again (see peer/services/own-chain.ts), so a repair loses nothing the mesh still holds.
import type { PrivateKey } from '@libp2p/interface'
import type { Block } from './block.ts'
import { Ledger } from './ledger.ts'
import type { Policy } from './policy.ts'
import { MemoryStore, type StoredRecord } from './store-types.ts'

export interface Rebuilt {
  /** What the repaired store holds, in the order the ledger applied it. */
  records: StoredRecord[]
  /** Intact blocks left out: they no longer link to anything kept. */
  dropped: Block[]
}

export async function rebuildLedger (salvaged: StoredRecord[], key: PrivateKey, policy?: Policy): Promise<Rebuilt> {
  const store = new MemoryStore()
  // A rebuild signs nothing: not even the genesis an empty chain would get.
  const ledger = await Ledger.open(store, key, { policy, autoReceive: false, signAfter: new Promise(() => {}) })
  for (const r of salvaged) if (r.kind === 'proof') await ledger.addProof(r.proof).catch(() => false)
  // Stored in the order they were accepted, blocks mostly apply in one pass; one whose
  // dependency (another chain's send) was stored later is tried again until nothing moves.
  let waiting = salvaged.flatMap(r => r.kind === 'block' ? [r.block] : [])
  for (let progress = true; progress && waiting.length > 0;) {
    const next: Block[] = []
    for (const b of waiting) {
      const outcome = await ledger.ingest(b)
      if (outcome.status !== 'accepted' && outcome.status !== 'duplicate' && outcome.status !== 'fork') next.push(b)
    }
    progress = next.length < waiting.length
    waiting = next
  }
  await ledger.close()
  return { records: await store.load(), dropped: waiting }
}
