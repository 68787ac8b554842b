import { describe, it, expect, beforeAll } from 'vitest'
import { CREDIT } from '../../src/ledger/block.ts'
import { Ledger } from '../../src/ledger/ledger.ts'
import { MemoryStore } from '../../src/ledger/store-types.ts'
import { DEFAULT_POLICY, dataFee, withFees } from '../../src/ledger/policy.ts'
import { signReceipt, verifyReceipt, WorkMeter, type WorkReceipt } from '../../src/ledger/receipts.ts'
import { newAgent, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

let client: TestAgent, server: TestAgent
const every = DEFAULT_POLICY.work.settleEveryUnits
const receipt = (tokens: number, key = client.key): Promise<WorkReceipt> =>
  signReceipt({ client: client.id, server: server.id, model: 'ab'.repeat(32), session: 's', tokens, layers: 10, ts: T0 }, key)

beforeAll(async () => {
  ;[client, server] = await Promise.all([newAgent(), newAgent()])
})

describe('work receipts', () => {
  it('verify only under the client key and with sane numbers', async () => {
    const r = await receipt(5)
    expect(await verifyReceipt(r)).toBe(true)
    expect(await verifyReceipt({ ...r, layers: 11 })).toBe(false)
    expect(await verifyReceipt(await receipt(5, server.key))).toBe(false)
    expect(await verifyReceipt(await signReceipt({ ...r, tokens: -1 }, client.key))).toBe(false)
  })

  it('ask for settlement after settleEveryUnits and pause the session at twice that', async () => {
    const meter = new WorkMeter(client.id, server.id, 's', DEFAULT_POLICY)
    await meter.accept(await receipt(every / 10 - 1))
    expect(meter.wantsSettlement).toBe(false)
    await meter.accept(await receipt(every / 10))
    expect([meter.wantsSettlement, meter.mustPause]).toEqual([true, false])
    await meter.accept(await receipt((2 * every) / 10))
    expect(meter.mustPause).toBe(true)
    meter.settled(every)
    expect([meter.unsettledUnits, meter.mustPause]).toEqual([every, false])
  })

  it('are paid once even across a restart, because paid units are read from the chain', async () => {
    const store = new MemoryStore()
    const L1 = await Ledger.open(store, client.key, { clock: () => T0 })
    await L1.settleWork(await receipt(100))
    const L2 = await Ledger.open(store, client.key, { clock: () => T0 })
    expect(L2.paidUnits('s', server.id)).toBe(1000)
    expect(await L2.settleWork(await receipt(100))).toBeUndefined()
    expect((await L2.settleWork(await receipt(120)))!.amount).toBe(200 * DEFAULT_POLICY.work.pricePerUnit)
  })
})

describe('data fee', () => {
  it('is 1 credit per started 100 KB when fees are on, nothing when off', () => {
    expect(dataFee(DEFAULT_POLICY, 500_000)).toBe(0)
    expect(dataFee(withFees(), 100 * 1024)).toBe(CREDIT)
    expect(dataFee(withFees(), 100 * 1024 + 1)).toBe(2 * CREDIT)
  })
})
