// Ledger throughput: how many blocks a verifier accepts per second (signature, links and
// balance rules), and how long a new agent takes to sync a 10,000-block chain from a peer.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { verifyBlockSignature } from '../src/ledger/block.ts'
import { Ledger } from '../src/ledger/ledger.ts'
import { MemoryStore } from '../src/ledger/store-types.ts'
import { encodeSyncMessage, LedgerSync, MAX_GOSSIP_BYTES, type SyncMessage } from '../src/ledger/sync.ts'

const BLOCKS = 10_000
const RUNS = 3

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function source(): Promise<LedgerSync> {
  const [a, b] = await Promise.all([generateKeyPair('Ed25519'), generateKeyPair('Ed25519')])
  const payee = (await Ledger.open(new MemoryStore(), b)).id
  const L = await Ledger.open(new MemoryStore(), a)
  for (let i = 1; i < BLOCKS; i++) await L.transfer(payee, 1, 'bench')
  return new LedgerSync(L)
}

/** Heads by gossip, then request/reply over a simulated stream, as two peers would. */
async function syncAll(from: LedgerSync, to: LedgerSync): Promise<void> {
  let requests: SyncMessage[] = (await to.handle(encodeSyncMessage(from.ownHead()), MAX_GOSSIP_BYTES)).requests
  while (requests.length > 0) {
    const next: SyncMessage[] = []
    for (const r of requests) {
      const reply = (await from.handle(encodeSyncMessage(r))).reply!
      next.push(...(await to.handle(encodeSyncMessage(reply))).requests)
    }
    requests = next
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const from = await source()
  const times: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const fresh = new LedgerSync(await Ledger.open(new MemoryStore(), await generateKeyPair('Ed25519')))
    const t0 = performance.now()
    await syncAll(from, fresh)
    times.push(performance.now() - t0)
    if (fresh.ledger.account(from.ledger.id)?.seq !== BLOCKS - 1) throw new Error('sync incomplete')
  }
  const ms = median(times)
  const blocks = from.ledger.blocks(from.ledger.id)
  const t0 = performance.now()
  for (const b of blocks) if (!(await verifyBlockSignature(b))) throw new Error('bad signature')
  const sigMs = performance.now() - t0
  return {
    blocks: BLOCKS,
    signatures_verified_per_s: Math.round(blocks.length / (sigMs / 1000)),
    sync_10k_ms: Math.round(ms),
    blocks_verified_per_s: Math.round(BLOCKS / (ms / 1000)),
    note: 'in-process: JSON encode/decode, Ed25519 verify, chain rules, memory store; no network'
  }
}
