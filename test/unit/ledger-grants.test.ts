import { describe, it, expect, beforeEach } from 'vitest'
import { CREDIT, hashBlock } from '../../src/ledger/block.ts'
import { DEFAULT_POLICY } from '../../src/ledger/policy.ts'
import { newAgent, World, T0, DAY, type TestAgent } from '../helpers/ledger-fixtures.ts'

const G = DEFAULT_POLICY.grants
const REG = G.registration
let alice: TestAgent, bob: TestAgent, carol: TestAgent
let w: World

const rejects = (p: Promise<unknown>, reason: string) => expect(p).rejects.toMatchObject({ reason })

beforeEach(async () => {
  alice ??= await newAgent()
  bob ??= await newAgent()
  carol ??= await newAgent()
  w = new World()
  for (const a of [alice, bob, carol]) await w.genesis(a)
})

async function pay(from: TestAgent, to: TestAgent, amount: number, ts = T0) {
  const send = await w.add(from, { amount, counterparty: to.id, ts })
  return w.add(to, { type: 'receive', amount, counterparty: from.id, ref: hashBlock(send), ts })
}

describe('daily low-budget allowance', () => {
  it('is granted below the line, once per UTC day', async () => {
    await rejects(w.add(alice, { type: 'grant', memo: 'daily', amount: G.daily.amount }), 'bad-grant')
    await w.add(alice, { amount: REG - CREDIT / 2, counterparty: bob.id })
    await rejects(w.add(alice, { type: 'grant', memo: 'daily', amount: G.daily.amount + 1 }), 'bad-grant')
    await w.add(alice, { type: 'grant', memo: 'daily', amount: G.daily.amount })
    await w.add(alice, { amount: G.daily.amount, counterparty: bob.id })
    await rejects(w.add(alice, { type: 'grant', memo: 'daily', amount: G.daily.amount }), 'bad-grant')
    await w.add(alice, { type: 'grant', memo: 'daily', amount: G.daily.amount, ts: T0 + DAY })
    expect(w.chain(alice.id).state.grants_total).toBe(REG + 2 * G.daily.amount)
  })
})

describe('monthly reactivation', () => {
  it('needs a full inactive period and comes once per period', async () => {
    const amount = G.reactivation.amount
    await rejects(w.add(alice, { type: 'grant', memo: 'reactivation', amount, ts: T0 + 29 * DAY }), 'bad-grant')
    await w.add(alice, { type: 'grant', memo: 'reactivation', amount, ts: T0 + 30 * DAY })
    await w.add(alice, { amount: 1, counterparty: bob.id, ts: T0 + 50 * DAY })
    await rejects(w.add(alice, { type: 'grant', memo: 'reactivation', amount, ts: T0 + 55 * DAY }), 'bad-grant')
    await w.add(alice, { type: 'grant', memo: 'reactivation', amount, ts: T0 + 80 * DAY })
  })
})

describe('mentor bonus', () => {
  const bonus = { type: 'grant' as const, memo: 'mentor', amount: G.mentor.bonus }

  it('pays the mentor once after its mentee earned from a third party', async () => {
    await pay(alice, bob, G.mentor.minHelp)
    const earned = await pay(carol, bob, CREDIT)
    await w.add(alice, { ...bonus, counterparty: bob.id, ref: hashBlock(earned) })
    expect(w.chain(alice.id).state.grants_total).toBe(REG + G.mentor.bonus)
    const again = await pay(carol, bob, CREDIT)
    await rejects(w.add(alice, { ...bonus, counterparty: bob.id, ref: hashBlock(again) }), 'bad-grant')
  })

  it('refuses without prior help, for help below the minimum, or for the mentor\'s own payment', async () => {
    const early = await pay(carol, bob, CREDIT)
    await pay(alice, bob, G.mentor.minHelp)
    await rejects(w.add(alice, { ...bonus, counterparty: bob.id, ref: hashBlock(early) }), 'bad-grant')
    const own = await pay(alice, bob, CREDIT)
    await rejects(w.add(alice, { ...bonus, counterparty: bob.id, ref: hashBlock(own) }), 'bad-grant')
    const w2 = new World()
    w = w2
    for (const a of [alice, bob, carol]) await w.genesis(a)
    await pay(alice, bob, G.mentor.minHelp - 1)
    const later = await pay(carol, bob, CREDIT)
    await rejects(w.add(alice, { ...bonus, counterparty: bob.id, ref: hashBlock(later) }), 'bad-grant')
  })

  it('waits for the mentee\'s chain when it is unknown', async () => {
    await rejects(w.add(alice, { ...bonus, counterparty: bob.id, ref: '33'.repeat(32) }), 'unknown-ref')
  })
})

describe('passive income for monitoring', () => {
  const grant = { type: 'grant' as const, memo: 'monitoring', amount: G.monitoring.amount }

  it('pays per known double-spend proof, once per proof, capped per day', async () => {
    await rejects(w.add(alice, { ...grant, ref: 'aa'.repeat(32) }), 'unknown-ref')
    const ids = Array.from({ length: G.monitoring.maxPerDay + 1 }, (_, i) => i.toString(16).padStart(64, '0'))
    ids.forEach(id => w.proofs.add(id))
    await w.add(alice, { ...grant, ref: ids[0] })
    await rejects(w.add(alice, { ...grant, ref: ids[0] }), 'bad-grant')
    for (const id of ids.slice(1, -1)) await w.add(alice, { ...grant, ref: id })
    await rejects(w.add(alice, { ...grant, ref: ids.at(-1)! }), 'bad-grant')
    await w.add(alice, { ...grant, ref: ids.at(-1)!, ts: T0 + DAY })
  })

  it('refuses unknown grant kinds and grants to others', async () => {
    await rejects(w.add(alice, { type: 'grant', memo: 'airdrop', amount: 1 }), 'bad-grant')
    await rejects(w.add(alice, { type: 'grant', memo: 'daily', amount: G.daily.amount, counterparty: bob.id }), 'bad-grant')
  })
})
