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

/** `onProgress(done, total)` after each record: every signature is checked again, which takes a while for a long ledger. */
export async function rebuildLedger (salvaged: StoredRecord[], key: PrivateKey, opts: { policy?: Policy, onProgress?: (done: number, total: number) => void } = {}): Promise<Rebuilt> {
  const { policy, onProgress } = opts
  const store = new MemoryStore()
  // A rebuild signs nothing: not even the genesis an empty chain would get.
  const ledger = await Ledger.open(store, key, { policy, autoReceive: false, signAfter: new Promise(() => {}) })
  // Records go in as they were stored (blocks in the order they were accepted, proofs where they
  // came), so the rebuilt ledger learns things in the order the agent did; a block whose
  // dependency (another chain's send) was stored later is tried again until nothing moves.
  const applied = async (r: StoredRecord): Promise<boolean> => {
    if (r.kind === 'proof') return await ledger.addProof(r.proof).then(() => true, () => true)
    const outcome = await ledger.ingest(r.block)
    return outcome.status === 'accepted' || outcome.status === 'duplicate' || outcome.status === 'fork'
  }
  let waiting: StoredRecord[] = []
  for (const [i, r] of salvaged.entries()) {
    if (!(await applied(r))) waiting.push(r)
    onProgress?.(i + 1, salvaged.length)
  }
  for (let progress = true; progress && waiting.length > 0;) {
    const next: StoredRecord[] = []
    for (const r of waiting) if (!(await applied(r))) next.push(r)
    progress = next.length < waiting.length
    waiting = next
  }
  await ledger.close()
  return { records: await store.load(), dropped: waiting.flatMap(r => r.kind === 'block' ? [r.block] : []) }
}
