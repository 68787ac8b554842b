import { describe, it, expect, beforeAll } from 'vitest'
import { CREDIT, hashBlock, signBlock, type Block } from '../../src/ledger/block.ts'
import { Ledger } from '../../src/ledger/ledger.ts'
import { MemoryStore } from '../../src/ledger/store-types.ts'
import { DEFAULT_POLICY, withFees } from '../../src/ledger/policy.ts'
import { verifyProof } from '../../src/ledger/doublespend.ts'
import { signReceipt, WorkMeter } from '../../src/ledger/receipts.ts'
import { newAgent, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

const REG = DEFAULT_POLICY.grants.registration
let a: TestAgent, b: TestAgent, c: TestAgent
beforeAll(async () => {
  ;[a, b, c] = await Promise.all([newAgent(), newAgent(), newAgent()])
})

/** Copies every block `from` knows into `to`, in chain order, the way sync would. */
async function share(from: Ledger, to: Ledger): Promise<void> {
  for (const s of from.accounts()) for (const blk of from.blocks(s.account)) await to.ingest(blk)
  await to.idle()
}

async function pair(policy = DEFAULT_POLICY, clock = () => T0) {
  const A = await Ledger.open(new MemoryStore(), a.key, { policy, clock, owner: 'owner://a' })
  const B = await Ledger.open(new MemoryStore(), b.key, { policy, clock })
  await share(A, B)
  await share(B, A)
  return { A, B }
}

describe('Ledger', () => {
  it('writes genesis once and rebuilds the same state from its store', async () => {
    const store = new MemoryStore()
    const A = await Ledger.open(store, a.key, { clock: () => T0, owner: 'owner://a' })
    await A.transfer(b.id, CREDIT, 'test')
    const again = await Ledger.open(store, a.key, { clock: () => T0 })
    expect(again.account()).toEqual(A.account())
    expect(again.account()).toMatchObject({ seq: 1, balance: REG - CREDIT, owner_id: 'owner://a' })
  })

  it('completes a transfer when the payee sees the send, and both sides agree', async () => {
    const { A, B } = await pair()
    const events: string[] = []
    B.on('block', e => events.push(`${e.own ? 'own' : 'peer'}:${e.block.type}`))
    await A.transfer(b.id, 3 * CREDIT, 'Completed text classification task')
    await share(A, B)
    expect(events).toEqual(['peer:send', 'own:receive'])
    await share(B, A)
    for (const L of [A, B]) {
      expect(L.account(a.id)!.balance).toBe(REG - 3 * CREDIT)
      expect(L.account(b.id)!.balance).toBe(REG + 3 * CREDIT)
      expect(L.audit()).toMatchObject({ inFlight: 0, supply: 2 * REG, balances: 2 * REG })
    }
  })

  it('receives on reopen a send it stored but died before receiving, and only once', async () => {
    const A = await Ledger.open(new MemoryStore(), a.key, { clock: () => T0 })
    const store = new MemoryStore()
    // Without auto-receive the store ends as a crash right after the send was written leaves it.
    const died = await Ledger.open(store, b.key, { clock: () => T0, autoReceive: false })
    await A.transfer(b.id, 2 * CREDIT, 'paid while dying')
    await share(A, died)
    expect(died.audit().inFlight).toBe(2 * CREDIT)
    const B = await Ledger.open(store, b.key, { clock: () => T0 })
    await B.idle()
    expect(B.account()).toMatchObject({ seq: 1, balance: REG + 2 * CREDIT })
    expect(B.audit()).toMatchObject({ inFlight: 0, balances: 2 * REG })
    const again = await Ledger.open(store, b.key, { clock: () => T0 })
    await again.idle()
    expect(again.account()).toEqual(B.account())
  })

  it('refuses its own overspend without changing state', async () => {
    const { A } = await pair()
    await expect(A.transfer(b.id, REG + 1)).rejects.toMatchObject({ reason: 'overspend' })
    expect(A.account()).toMatchObject({ seq: 0, balance: REG })
  })

  it('runs the five-step task flow: reserve, execute, settle, receive, task.result', async () => {
    const { A, B } = await pair()
    const req = await A.reserveTask(b.id, 4 * CREDIT, 'task-1')
    expect(A.account()).toMatchObject({ pending: 4 * CREDIT, balance: REG })
    await share(A, B)
    expect(B.reservationHolds(req)).toBe(true)
    expect(B.reservationHolds({ ...req, amount: 5 * CREDIT })).toBe(false)
    const send = await A.settleTask(req.reserve, 3 * CREDIT)
    expect(A.account()).toMatchObject({ pending: 0, balance: REG - 3 * CREDIT })
    await share(A, B)
    const receive = B.blocks(b.id).find(x => x.type === 'receive' && x.ref === hashBlock(send))!
    expect(B.taskResult('task-1', hashBlock(receive))).toEqual({ taskId: 'task-1', status: 'ok', earned: 3 * CREDIT, receive: hashBlock(receive) })
    expect(B.taskResult('task-1', hashBlock(send)).status).toBe('failed')
    expect(B.reservationHolds(req)).toBe(false)
  })

  it('releases failed and timed-out reservations', async () => {
    let now = T0
    const A = await Ledger.open(new MemoryStore(), a.key, { clock: () => now })
    const r1 = await A.reserveTask(b.id, CREDIT, 't1')
    await A.releaseTask(r1.reserve)
    expect(A.account()!.pending).toBe(0)
    await A.reserveTask(b.id, CREDIT, 't2')
    now += DEFAULT_POLICY.taskTimeoutMs - 1
    expect(await A.expireTasks()).toHaveLength(0)
    now += 1
    expect(await A.expireTasks()).toHaveLength(1)
    expect(A.account()).toMatchObject({ pending: 0, balance: REG })
  })

  it('pays inference work from client-signed receipts, each unit once', async () => {
    const { A, B } = await pair()
    const meter = new WorkMeter(a.id, b.id, 's1', DEFAULT_POLICY)
    const receipt = await signReceipt({ client: a.id, server: b.id, model: 'm'.repeat(64), session: 's1', tokens: 100, layers: 12, ts: T0 }, a.key)
    expect(await meter.accept(receipt)).toBe(true)
    expect(await meter.accept({ ...receipt, tokens: 1000 })).toBe(false)
    expect(await meter.accept(await signReceipt({ ...receipt, tokens: 1000 }, c.key))).toBe(false)
    expect(meter.unsettledUnits).toBe(1200)
    const pay = await A.settleWork(receipt)
    expect(pay!.amount).toBe(1200 * DEFAULT_POLICY.work.pricePerUnit)
    expect(await A.settleWork(receipt)).toBeUndefined()
    const more = await signReceipt({ ...receipt, tokens: 150 }, a.key)
    expect((await A.settleWork(more))!.amount).toBe(600 * DEFAULT_POLICY.work.pricePerUnit)
    await expect(B.settleWork(more)).rejects.toMatchObject({ reason: 'malformed' })
    await share(A, B)
    expect(B.account()!.received_total).toBe(1800 * DEFAULT_POLICY.work.pricePerUnit)
  })

  it('keeps supply = grants - burned fees with fees on', async () => {
    const P = withFees()
    const { A, B } = await pair(P)
    await A.transfer(b.id, 2 * CREDIT)
    await A.payFee('broadcast', 2)
    const req = await A.reserveTask(b.id, CREDIT, 't', 5)
    await A.settleTask(req.reserve, CREDIT)
    await share(A, B)
    await share(B, A)
    const burned = 2 * P.fees.registration + 3 * P.fees.transaction + 2 * P.fees.broadcast + P.fees.priority
    for (const L of [A, B]) expect(L.audit()).toEqual({ grants: 2 * REG, burned, balances: 2 * REG - burned, inFlight: 0, supply: 2 * REG - burned })
  })

  it('turns two blocks at one seq into a proof, flags the account, and counts none of its blocks from the fork on', async () => {
    const { A, B } = await pair()
    const C = await Ledger.open(new MemoryStore(), c.key, { clock: () => T0 })
    const send = await A.transfer(b.id, REG, 'all to b')
    const twin: Block = await signBlock({ ...send, counterparty: c.id, memo: 'all to c' }, a.key)
    expect(await B.ingest(send)).toMatchObject({ status: 'accepted' })
    const out = await B.ingest(twin)
    expect(out.status).toBe('fork')
    expect(B.isFlagged(a.id)).toBe(true)
    const proof = (out as { proof: unknown }).proof
    expect(await verifyProof(proof)).toBe(a.id)
    expect(await C.addProof(proof)).toBe(true)
    expect(C.isFlagged(a.id)).toBe(true)
    expect(await C.addProof(proof)).toBe(false)
    // Kept, so that a receive of it can be checked, but it moves nothing: a's balance stays at its genesis.
    const later = await signBlock({ ...send, seq: 2, prev: hashBlock(send), amount: 1 }, a.key)
    expect(await B.ingest(later)).toMatchObject({ status: 'accepted' })
    expect(B.block(hashBlock(later))).toEqual(later)
    expect(B.account(a.id)).toMatchObject({ seq: 0, balance: REG })
    expect(B.account()).toMatchObject({ balance: REG })
    const forgedTwin = { ...twin, amount: 1 }
    expect(await B.ingest(forgedTwin)).toMatchObject({ status: 'rejected', reason: 'bad-signature' })
  })

  it('claims failsafes only when eligible', async () => {
    let now = T0
    const A = await Ledger.open(new MemoryStore(), a.key, { clock: () => now })
    expect(await A.claimFailsafes()).toEqual([])
    await A.transfer(b.id, REG - CREDIT / 2)
    expect((await A.claimFailsafes()).map(x => x.memo)).toEqual(['daily'])
    now += 30 * 24 * 3600 * 1000
    expect((await A.claimFailsafes()).map(x => x.memo)).toEqual(['reactivation'])
    expect(A.account()!.balance).toBe(CREDIT / 2 + DEFAULT_POLICY.grants.daily.amount + DEFAULT_POLICY.grants.reactivation.amount)
  })

  it('rejects malformed input to ingest without throwing', async () => {
    const { A } = await pair()
    const seen: string[] = []
    A.on('rejected', e => seen.push(e.reason))
    expect(await A.ingest({ account: 'x' })).toMatchObject({ status: 'rejected', reason: 'malformed' })
    expect(await A.ingest(null)).toMatchObject({ status: 'rejected', reason: 'malformed' })
    expect(seen).toEqual(['malformed', 'malformed'])
  })
})
