// A payer forks its chain after an honest payee already built on one branch. Whatever order an
// agent learns the blocks and the proof in, it must keep the payee's chain growing and derive
// the same balances as everyone else (PROTOCOL.md section 13, "Forks").
import { describe, it, expect, beforeAll } from 'vitest'
import { CREDIT, hashBlock, signBlock, type Block } from '../../src/ledger/block.ts'
import { Ledger, type IngestOutcome } from '../../src/ledger/ledger.ts'
import { MemoryStore } from '../../src/ledger/store-types.ts'
import { DEFAULT_POLICY } from '../../src/ledger/policy.ts'
import { makeProof, type DoubleSpendProof } from '../../src/ledger/doublespend.ts'
import { LedgerSync } from '../../src/ledger/sync.ts'
import { meshRound, newAgent, pull, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

const REG = DEFAULT_POLICY.grants.registration
let m: TestAgent, p: TestAgent, q: TestAgent, r: TestAgent, x: TestAgent, y: TestAgent, z: TestAgent
beforeAll(async () => {
  ;[m, p, q, r, x, y, z] = await Promise.all(Array.from({ length: 7 }, newAgent))
})

const open = (agent: TestAgent, autoReceive = false) => Ledger.open(new MemoryStore(), agent.key, { clock: () => T0, autoReceive })
const participants = () => [m, p, q, r].map(a => a.id)
/** Everything derived about the accounts of the story, as one agent sees it. */
const view = (L: Ledger) => participants().map(id => L.account(id))

function balanced(L: Ledger): void {
  const a = L.audit()
  expect(a.supply).toBe(a.balances + a.inFlight)
}

/**
 * m pays all it has to p (send s1), then signs a twin of s1 paying r. p receives s1 and, counting
 * on it, pays q more than its own registration grant; later p pays q an amount it does own.
 */
async function story() {
  const M = await open(m), P = await open(p), Q = await open(q), R = await open(r)
  const mg = M.blocks(m.id)[0]
  const s1 = await M.transfer(p.id, REG, 'all to p')
  const twin = await signBlock({ ...s1, counterparty: r.id, memo: 'all to r' }, m.key)
  for (const b of [mg, s1]) await P.ingest(b)
  const pr = await P.receive(hashBlock(s1))
  const spend = await P.transfer(q.id, REG + 5 * CREDIT, 'counts on s1')
  for (const b of [mg, s1, ...P.blocks(p.id)]) await Q.ingest(b)
  const qr = await Q.receive(hashBlock(spend))
  const tail = await P.transfer(q.id, CREDIT, 'honest')
  await Q.ingest(tail)
  const qt = await Q.receive(hashBlock(tail))
  for (const b of [mg, twin]) await R.ingest(b)
  const rt = await R.receive(hashBlock(twin))
  const honest = [mg, s1, P.blocks(p.id)[0], pr, spend, Q.blocks(q.id)[0], qr, tail, qt]
  const otherBranch = [twin, R.blocks(r.id)[0], rt]
  return { M, P, Q, R, honest, otherBranch, proof: makeProof(s1, twin) }
}

type Step = Block | { proof: DoubleSpendProof }

async function feed(L: Ledger, steps: Step[]): Promise<IngestOutcome[]> {
  const out: IngestOutcome[] = []
  for (const s of steps) {
    if ('proof' in s) await L.addProof(s.proof)
    else out.push(await L.ingest(s))
  }
  await L.idle()
  return out
}

const expected = () => [
  // m: the fork is at seq 1, so only its genesis counts.
  { account: m.id, seq: 0, balance: REG, spent_total: 0 },
  // p: s1 credits nothing, the overspend that relied on it is unfunded, the honest tail counts.
  { account: p.id, seq: 3, balance: REG - CREDIT, received_total: 0, spent_total: CREDIT },
  { account: q.id, seq: 2, balance: REG + CREDIT, received_total: CREDIT },
  { account: r.id, seq: 1, balance: REG, received_total: 0 }
]

describe('a receive of a send at or after a fork', () => {
  it('is kept but credits nothing, and every learning order derives the same state', async () => {
    const { P, Q, R, honest, otherBranch, proof } = await story()
    const X = await open(x), Y = await open(y), Z = await open(z)
    const outcomes = [
      // X learns the whole honest branch, then the twin: it finds the fork itself.
      await feed(X, [...honest, ...otherBranch]),
      // Y has the proof before it sees any block of m.
      await feed(Y, [{ proof }, ...honest, ...otherBranch]),
      // Z holds the other branch first; s1 reaches it as the second half of the fork.
      await feed(Z, [honest[0], ...otherBranch, ...honest.slice(1)])
    ]
    for (const o of outcomes) expect(o.filter(x => x.status === 'rejected' || x.status === 'missing')).toEqual([])
    // The agents that built the story learn of the fork last and must recompute what they derived.
    for (const L of [P, Q, R]) await feed(L, [...otherBranch, ...honest])
    const reference = view(X)
    expect(reference).toMatchObject(expected())
    for (const L of [X, Y, Z, P, Q, R]) {
      expect(L.isFlagged(m.id)).toBe(true)
      expect(view(L)).toEqual(reference)
      balanced(L)
    }
  })

  it('keeps the payee chain growing everywhere, and nobody signs a block its own view leaves unfunded', async () => {
    const { P, Q, honest, otherBranch, proof } = await story()
    const Y = await open(y)
    await feed(Y, [{ proof }, ...honest, ...otherBranch])
    await feed(P, [...otherBranch])
    await feed(Q, [...otherBranch])
    const more = await P.transfer(q.id, 2 * CREDIT, 'after the proof')
    expect(await Y.ingest(more)).toMatchObject({ status: 'accepted' })
    expect(await Q.ingest(more)).toMatchObject({ status: 'accepted' })
    await Q.receive(hashBlock(more))
    expect(Y.account(p.id)).toMatchObject({ seq: 4, balance: REG - 3 * CREDIT })
    // q's own chain claims 18 credits received, but only 3 of them were funded.
    await expect(Q.transfer(p.id, REG + 5 * CREDIT)).rejects.toMatchObject({ reason: 'overspend' })
    for (const b of Q.blocks(q.id)) await Y.ingest(b)
    expect(Y.account(q.id)).toEqual(Q.account())
    expect(Y.account(q.id)).toMatchObject({ balance: REG + 3 * CREDIT })
    balanced(Y)
  })

  it('survives a restart: the stored blocks and proofs derive the same state again', async () => {
    const { honest, otherBranch, proof } = await story()
    const store = new MemoryStore()
    const Y = await Ledger.open(store, y.key, { clock: () => T0 })
    // The twin lands in the chain before the proof, s1 after it: both must replay to the same place.
    const out = await feed(Y, [honest[0], otherBranch[0], { proof }, ...honest.slice(1), ...otherBranch.slice(1)])
    expect(out.filter(o => o.status === 'rejected' || o.status === 'missing')).toEqual([])
    const again = await Ledger.open(store, y.key, { clock: () => T0 })
    expect(view(again)).toEqual(view(Y))
    expect(view(again)).toMatchObject(expected())
  })
})

describe('sync across a fork', () => {

  it('agents holding different branches fetch the other branch a receive needs and converge', async () => {
    const M = await open(m)
    const [P, Q, R, O] = await Promise.all([p, q, r, x].map(async a => new LedgerSync(await open(a, true))))
    const s1 = await M.transfer(p.id, REG, 'all to p')
    const twin = await signBlock({ ...s1, counterparty: r.id, memo: 'all to r' }, m.key)
    await P.handle({ type: 'ledger.blocks', blocks: [M.blocks(m.id)[0], s1] })
    await R.handle({ type: 'ledger.blocks', blocks: [M.blocks(m.id)[0], twin] })
    await P.ledger.idle()
    await R.ledger.idle()
    await P.ledger.transfer(q.id, REG + 5 * CREDIT, 'counts on s1')
    const nodes = [P, Q, R, O]
    await meshRound(nodes)
    await P.ledger.transfer(q.id, CREDIT, 'honest')
    await meshRound(nodes)
    await meshRound(nodes)
    const reference = view(P.ledger)
    expect(reference).toMatchObject(expected())
    for (const n of nodes) {
      expect(n.ledger.isFlagged(m.id)).toBe(true)
      expect(view(n.ledger)).toEqual(reference)
      balanced(n.ledger)
    }
  })
})
