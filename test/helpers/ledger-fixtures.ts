// Keys, contexts and block builders shared by the ledger unit tests.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { BLOCK_VERSION, signBlock, ZERO_HASH, type Block, type UnsignedBlock } from '../../src/ledger/block.ts'
import { Chain, type VerifyContext } from '../../src/ledger/chain.ts'
import { DEFAULT_POLICY, type Policy } from '../../src/ledger/policy.ts'
import { mineGenesis } from '../../src/ledger/grants.ts'
import { encodeSyncMessage, MAX_GOSSIP_BYTES, type LedgerSync, type SyncMessage } from '../../src/ledger/sync.ts'

export const T0 = Date.UTC(2025, 9, 29, 16, 35, 12)
export const DAY = 24 * 3600 * 1000

export interface TestAgent {
  key: PrivateKey
  id: string
}

export async function newAgent(): Promise<TestAgent> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

/** A world of chains keyed by account, acting as the verifier's view. */
export class World {
  chains = new Map<string, Chain>()
  proofs = new Set<string>()
  constructor(public policy: Policy = DEFAULT_POLICY, public now = T0 + 365 * DAY) {}

  chain(id: string): Chain {
    let c = this.chains.get(id)
    if (c == null) this.chains.set(id, (c = new Chain(id)))
    return c
  }

  get ctx(): VerifyContext {
    return {
      policy: this.policy,
      now: this.now,
      lookup: h => {
        for (const c of this.chains.values()) {
          const at = c.seqOf(h)
          if (at !== undefined) return c.blocks[at]
        }
        return undefined
      },
      chain: a => this.chains.get(a),
      hasProof: id => this.proofs.has(id),
      // No forks in these worlds: every held send moves what it says.
      forkSeq: () => Infinity,
      moves: h => {
        for (const c of this.chains.values()) {
          const at = c.seqOf(h)
          if (at !== undefined) return c.movesAt(at)
        }
        return false
      }
    }
  }

  /** Signs the next block of `a`'s chain (not appended), defaults filled from the chain head. */
  async next(a: TestAgent, fields: Partial<UnsignedBlock>): Promise<Block> {
    const s = this.chain(a.id).state
    const b: UnsignedBlock = {
      v: BLOCK_VERSION, account: a.id, seq: s.seq + 1, prev: s.head, type: 'send', amount: 0, fee: 0,
      counterparty: '', ref: ZERO_HASH, ts: Math.max(s.lastTs, T0), memo: '', ...fields
    }
    return signBlock(b, a.key)
  }

  async add(a: TestAgent, fields: Partial<UnsignedBlock>): Promise<Block> {
    const b = await this.next(a, fields)
    await this.chain(a.id).append(b, this.ctx)
    return b
  }

  async genesis(a: TestAgent, owner = 'owner://test', ts = T0): Promise<Block> {
    const fee = this.policy.fees.enabled ? this.policy.fees.registration : 0
    const s = this.chain(a.id).state
    const unsigned = mineGenesis({ v: BLOCK_VERSION, account: a.id, seq: 0, prev: s.head, type: 'genesis', amount: this.policy.grants.registration, fee, counterparty: '', ref: ZERO_HASH, ts, memo: owner }, this.policy.grants.registrationWorkBits)
    const b = await signBlock(unsigned, a.key)
    await this.chain(a.id).append(b, this.ctx)
    return b
  }
}

/** Rounds of requests a pull may take before it is taken for a loop that never settles. */
const MAX_PULL_ROUNDS = 64

/** `to` hears `from`'s heads, then pulls over a simulated stream until nothing is missing. */
export async function pull(from: LedgerSync, to: LedgerSync): Promise<void> {
  let requests = (await to.handle(encodeSyncMessage(from.someHeads()), MAX_GOSSIP_BYTES)).requests
  for (let round = 0; requests.length > 0; round++) {
    if (round >= MAX_PULL_ROUNDS) throw new Error(`sync still asking after ${MAX_PULL_ROUNDS} rounds: ${JSON.stringify(requests.slice(0, 3))}`)
    const next: SyncMessage[] = []
    for (const r of requests) {
      const reply = (await from.handle(encodeSyncMessage(r))).reply
      if (reply) next.push(...(await to.handle(encodeSyncMessage(reply))).requests)
    }
    requests = next as typeof requests
  }
  await to.ledger.idle()
}

/** Every node pulls from every other once. */
export async function meshRound(nodes: LedgerSync[]): Promise<void> {
  for (const x of nodes) for (const y of nodes) if (x !== y) await pull(x, y)
}
