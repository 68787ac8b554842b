import { describe, it, expect, beforeEach } from 'vitest'
import { CREDIT, hashBlock, signBlock, ZERO_HASH, type Block } from '../../src/ledger/block.ts'
import { DEFAULT_POLICY, withFees } from '../../src/ledger/policy.ts'
import { leadingZeroBits } from '../../src/ledger/grants.ts'
import { newAgent, World, T0, DAY, type TestAgent } from '../helpers/ledger-fixtures.ts'

const REG = DEFAULT_POLICY.grants.registration
let alice: TestAgent, bob: TestAgent, carol: TestAgent
let w: World

async function rejects(p: Promise<unknown>, reason: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ reason })
}

beforeEach(async () => {
  alice ??= await newAgent()
  bob ??= await newAgent()
  carol ??= await newAgent()
  w = new World()
  await w.genesis(alice, 'owner://andiroene')
  await w.genesis(bob)
})

describe('genesis', () => {
  it('grants the registration grant and names the owner', () => {
    expect(w.chain(alice.id).state).toMatchObject({ seq: 0, balance: REG, earned_total: REG, spent_total: 0, pending: 0, owner_id: 'owner://andiroene' })
  })

  it('must grant exactly the registration grant', async () => {
    await rejects(w.add(carol, { type: 'genesis', amount: REG + 1 }), 'bad-grant')
  })

  it('costs the registration work the policy asks for', async () => {
    w.policy = { ...DEFAULT_POLICY, grants: { ...DEFAULT_POLICY.grants, registrationWorkBits: 10 } }
    expect([leadingZeroBits('f' + '0'.repeat(63)), leadingZeroBits('0f'), leadingZeroBits('001f'), leadingZeroBits('00')]).toEqual([0, 4, 11, 8])
    let lazy = await w.next(carol, { type: 'genesis', amount: REG })
    for (let n = 1; leadingZeroBits(hashBlock(lazy)) >= 10; n++) lazy = await w.next(carol, { type: 'genesis', amount: REG, ref: n.toString(16).padStart(64, '0') })
    await rejects(w.chain(carol.id).append(lazy, w.ctx), 'bad-grant')
    const mined = await w.genesis(carol)
    expect(leadingZeroBits(hashBlock(mined))).toBeGreaterThanOrEqual(10)
  })

  it('is exactly seq 0', async () => {
    await rejects(w.add(carol, { type: 'send', amount: 1, counterparty: bob.id }), 'bad-type')
    await rejects(w.add(alice, { type: 'genesis', amount: REG }), 'bad-type')
  })
})

describe('chain links', () => {
  it('rejects a wrong prev, a gap, a taken seq, and leaves the chain unchanged', async () => {
    const before = w.chain(alice.id).state
    await rejects(w.add(alice, { prev: '11'.repeat(32), amount: 1, counterparty: bob.id }), 'bad-link')
    await rejects(w.add(alice, { seq: 2, amount: 1, counterparty: bob.id }), 'gap')
    await rejects(w.add(alice, { seq: 0, prev: ZERO_HASH, type: 'genesis', amount: REG }), 'bad-seq')
    expect(w.chain(alice.id).state).toEqual(before)
  })

  it('rejects a block signed by another key and a block altered after signing', async () => {
    const forged = await signBlock({ ...(await w.next(alice, { amount: 1, counterparty: bob.id })) }, bob.key)
    await rejects(w.chain(alice.id).append(forged, w.ctx), 'bad-signature')
    const good = await w.next(alice, { amount: 1, counterparty: bob.id })
    await rejects(w.chain(alice.id).append({ ...good, amount: 2 }, w.ctx), 'bad-signature')
    await w.chain(alice.id).append(good, w.ctx)
  })

  it('rejects time running backwards or too far ahead', async () => {
    await rejects(w.add(alice, { amount: 1, counterparty: bob.id, ts: T0 - 1 }), 'bad-ts')
    await rejects(w.add(alice, { amount: 1, counterparty: bob.id, ts: w.now + DEFAULT_POLICY.maxClockSkewMs + 1 }), 'bad-ts')
  })
})

describe('transfers', () => {
  it('moves credits with a send and its receive', async () => {
    const send = await w.add(alice, { amount: 3 * CREDIT, counterparty: bob.id, memo: 'Completed text classification task' })
    expect(w.chain(alice.id).state).toMatchObject({ balance: REG - 3 * CREDIT, spent_total: 3 * CREDIT })
    await w.add(bob, { type: 'receive', amount: 3 * CREDIT, counterparty: alice.id, ref: hashBlock(send) })
    expect(w.chain(bob.id).state).toMatchObject({ balance: REG + 3 * CREDIT, earned_total: REG + 3 * CREDIT, received_total: 3 * CREDIT })
  })

  it('refuses overspending, sends of nothing and transfers to oneself', async () => {
    await rejects(w.add(alice, { amount: REG + 1, counterparty: bob.id }), 'overspend')
    await rejects(w.add(alice, { amount: 0, counterparty: bob.id }), 'bad-amount')
    await rejects(w.add(alice, { amount: 1, counterparty: alice.id }), 'self-transfer')
    await w.add(alice, { amount: REG, counterparty: bob.id })
    expect(w.chain(alice.id).state.balance).toBe(0)
  })

  it('refuses a receive without its send, of a send to someone else, with another amount, or twice', async () => {
    await w.genesis(carol)
    await rejects(w.add(bob, { type: 'receive', amount: 1, counterparty: alice.id, ref: '22'.repeat(32) }), 'unknown-ref')
    const toCarol = await w.add(alice, { amount: 2, counterparty: carol.id })
    await rejects(w.add(bob, { type: 'receive', amount: 2, counterparty: alice.id, ref: hashBlock(toCarol) }), 'unknown-ref')
    const toBob = await w.add(alice, { amount: 5, counterparty: bob.id })
    await rejects(w.add(bob, { type: 'receive', amount: 6, counterparty: alice.id, ref: hashBlock(toBob) }), 'bad-amount')
    await w.add(bob, { type: 'receive', amount: 5, counterparty: alice.id, ref: hashBlock(toBob) })
    await rejects(w.add(bob, { type: 'receive', amount: 5, counterparty: alice.id, ref: hashBlock(toBob) }), 'replay')
    expect(w.chain(bob.id).state.balance).toBe(REG + 5)
  })

  it('allows an overdraft only within the policy credit limit', async () => {
    const pay = await w.add(bob, { amount: 4 * CREDIT, counterparty: alice.id })
    await w.add(alice, { type: 'receive', amount: 4 * CREDIT, counterparty: bob.id, ref: hashBlock(pay) })
    await rejects(w.add(alice, { amount: REG + 4 * CREDIT + 1, counterparty: bob.id }), 'overspend')
    w.policy = { ...DEFAULT_POLICY, creditLimit: { ratio: 0.5, max: 10 * CREDIT } }
    await rejects(w.add(alice, { amount: REG + 6 * CREDIT + 1, counterparty: bob.id }), 'overspend')
    await w.add(alice, { amount: REG + 6 * CREDIT, counterparty: bob.id })
    expect(w.chain(alice.id).state.balance).toBe(-2 * CREDIT)
  })
})

describe('task reservations', () => {
  let reserve: Block
  beforeEach(async () => {
    reserve = await w.add(alice, { type: 'reserve', amount: 4 * CREDIT, counterparty: bob.id, memo: 'task-1' })
  })

  it('holds credits as pending, which cannot be spent', async () => {
    expect(w.chain(alice.id).state).toMatchObject({ balance: REG, pending: 4 * CREDIT })
    await rejects(w.add(alice, { amount: REG - 4 * CREDIT + 1, counterparty: carol.id }), 'overspend')
    await rejects(w.add(alice, { type: 'reserve', amount: REG - 4 * CREDIT + 1, counterparty: carol.id }), 'overspend')
  })

  it('settles from the reservation up to its amount and to its worker only', async () => {
    const h = hashBlock(reserve)
    await rejects(w.add(alice, { amount: 4 * CREDIT + 1, counterparty: bob.id, ref: h }), 'bad-amount')
    await rejects(w.add(alice, { amount: CREDIT, counterparty: carol.id, ref: h }), 'bad-amount')
    await w.add(alice, { amount: 3 * CREDIT, counterparty: bob.id, ref: h })
    expect(w.chain(alice.id).state).toMatchObject({ balance: REG - 3 * CREDIT, pending: CREDIT })
    expect(w.chain(alice.id).reservation(h)?.remaining).toBe(CREDIT)
  })

  it('releases exactly the remainder, once', async () => {
    const h = hashBlock(reserve)
    await rejects(w.add(alice, { type: 'release', amount: CREDIT, counterparty: bob.id, ref: h }), 'bad-amount')
    await w.add(alice, { type: 'release', amount: 4 * CREDIT, counterparty: bob.id, ref: h })
    expect(w.chain(alice.id).state).toMatchObject({ balance: REG, pending: 0 })
    await rejects(w.add(alice, { type: 'release', amount: 4 * CREDIT, counterparty: bob.id, ref: h }), 'unknown-ref')
    await rejects(w.add(alice, { amount: CREDIT, counterparty: bob.id, ref: h }), 'unknown-ref')
  })
})

describe('fees (on)', () => {
  const P = withFees()
  beforeEach(async () => {
    w = new World(P)
    await w.genesis(alice)
    await w.genesis(bob)
  })

  it('charge registration at genesis and a transaction fee per send and reserve, burned', async () => {
    expect(w.chain(alice.id).state).toMatchObject({ balance: REG - CREDIT, fees_total: CREDIT })
    await rejects(w.add(alice, { amount: CREDIT, counterparty: bob.id }), 'bad-fee')
    await rejects(w.add(alice, { amount: CREDIT, counterparty: bob.id, fee: 2 * P.fees.transaction }), 'bad-fee')
    await w.add(alice, { amount: CREDIT, counterparty: bob.id, fee: P.fees.transaction })
    await w.add(alice, { type: 'reserve', amount: CREDIT, counterparty: bob.id, fee: P.fees.transaction })
    expect(w.chain(alice.id).state).toMatchObject({ balance: REG - 2 * CREDIT - 2 * P.fees.transaction, spent_total: 2 * CREDIT + 2 * P.fees.transaction })
  })

  it('charge inactivity per full period without a block', async () => {
    const ts = T0 + 61 * DAY
    await rejects(w.add(alice, { type: 'fee', memo: 'broadcast', ts, fee: P.fees.broadcast }), 'bad-fee')
    await w.add(alice, { type: 'fee', memo: 'broadcast', ts, fee: P.fees.broadcast + 2 * P.fees.inactivity })
    expect(w.chain(alice.id).state.fees_total).toBe(CREDIT + P.fees.broadcast + 2 * P.fees.inactivity)
  })

  it('take declared broadcast, data and priority fees in multiples of their rate', async () => {
    await w.add(alice, { type: 'fee', memo: 'broadcast', fee: 3 * P.fees.broadcast })
    await w.add(alice, { type: 'fee', memo: 'data', fee: P.fees.data })
    await w.add(alice, { type: 'fee', memo: 'priority', fee: P.fees.priority })
    await rejects(w.add(alice, { type: 'fee', memo: 'priority', fee: P.fees.priority + 1 }), 'bad-fee')
    await rejects(w.add(alice, { type: 'fee', memo: 'tip', fee: P.fees.priority }), 'bad-fee')
    await rejects(w.add(alice, { type: 'fee', memo: 'data', fee: 0 }), 'bad-fee')
    await rejects(w.add(alice, { type: 'fee', memo: 'data', fee: 100 * P.fees.data }), 'overspend')
  })

  it('are refused while off', async () => {
    const off = new World()
    await off.genesis(alice)
    await rejects(off.add(alice, { type: 'fee', memo: 'broadcast', fee: P.fees.broadcast }), 'bad-fee')
    await rejects(off.add(alice, { amount: 1, counterparty: bob.id, fee: P.fees.transaction }), 'bad-fee')
  })
})
