import { describe, it, expect, beforeAll } from 'vitest'
import { CREDIT, hashBlock, signBlock, type Block } from '../../src/ledger/block.ts'
import { Ledger } from '../../src/ledger/ledger.ts'
import { MemoryStore } from '../../src/ledger/store-types.ts'
import { DEFAULT_POLICY } from '../../src/ledger/policy.ts'
import { checkSyncBody, creditTransfer, encodeSyncMessage, LedgerSync, MAX_GOSSIP_BYTES, MAX_RANGE } from '../../src/ledger/sync.ts'
import { meshRound, newAgent, pull, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

const REG = DEFAULT_POLICY.grants.registration
let agents: TestAgent[]
beforeAll(async () => {
  agents = await Promise.all(Array.from({ length: 4 }, newAgent))
})

async function node(i: number, clock = () => T0) {
  return new LedgerSync(await Ledger.open(new MemoryStore(), agents[i].key, { clock }))
}


const states = (s: LedgerSync) => s.ledger.accounts().map(x => [x.account, x.balance, x.pending, x.seq]).sort()

describe('sync', () => {
  it('converges: after random transfers and tasks every node derives the same balances', async () => {
    const nodes = await Promise.all([0, 1, 2, 3].map(i => node(i)))
    await meshRound(nodes)
    let seed = 0x9e3779b9
    const rnd = (n: number) => {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5
      return (seed >>> 0) % n
    }
    for (let i = 0; i < 40; i++) {
      const x = nodes[rnd(4)]
      const to = agents[rnd(4)].id
      if (to === x.ledger.id) continue
      const amount = (1 + rnd(20)) * (CREDIT / 10)
      if (x.ledger.account()!.balance - x.ledger.account()!.pending < amount) continue
      if (rnd(3) === 0) {
        const req = await x.ledger.reserveTask(to, amount, `t${i}`)
        if (rnd(2) === 0) await x.ledger.settleTask(req.reserve, amount)
        else await x.ledger.releaseTask(req.reserve)
      } else await x.ledger.transfer(to, amount, `r${i}`)
      if (i % 10 === 9) await meshRound(nodes)
    }
    await meshRound(nodes)
    await meshRound(nodes)
    const reference = states(nodes[0])
    expect(reference).toHaveLength(4)
    for (const n of nodes) {
      expect(states(n)).toEqual(reference)
      expect(n.ledger.audit()).toMatchObject({ inFlight: 0, supply: 4 * REG, balances: 4 * REG })
    }
    expect(nodes[0].ledger.blocks(agents[1].id).length).toBeGreaterThan(5)
  })

  it('pulls long chains in ranges of MAX_RANGE', async () => {
    const [x, y] = await Promise.all([node(0), node(1)])
    for (let i = 0; i < MAX_RANGE + 10; i++) await x.ledger.payFee('broadcast').then(() => x.ledger.transfer(agents[1].id, 1))
    await pull(x, y)
    expect(y.ledger.account(agents[0].id)).toEqual(x.ledger.account(agents[0].id))
  })

  it('tells when a peer\'s heads show it holding less of a chain than we do', async () => {
    const [x, y] = await Promise.all([node(0), node(1)])
    await pull(x, y)
    expect((await x.handle(y.someHeads())).senderBehind).toBeUndefined()
    await x.ledger.transfer(agents[1].id, CREDIT)
    // y still lists x's chain at its genesis: x's heads would help it.
    expect((await x.handle(y.someHeads())).senderBehind).toBe(true)
    // The other way round y is the one behind, and asks for the blocks instead.
    const theirs = await y.handle(x.someHeads())
    expect(theirs.senderBehind).toBeUndefined()
    expect(theirs.requests).toContainEqual({ type: 'ledger.request', account: agents[0].id, from: 1, to: 1 })
  })

  it('parks a receive until its send arrives, fetching the payer chain', async () => {
    const [x, y, z] = await Promise.all([node(0), node(1), node(2)])
    await pull(x, y)
    await x.ledger.transfer(agents[1].id, CREDIT)
    await pull(x, y)
    expect(y.ledger.account()!.balance).toBe(REG + CREDIT)
    // A block after the receive must wait with it rather than count as a gap.
    await y.ledger.transfer(agents[2].id, 1)
    const out = await z.handle({ type: 'ledger.blocks', blocks: y.ledger.blocks(agents[1].id) })
    expect(out.requests).toContainEqual({ type: 'ledger.request', account: agents[0].id, from: 0, to: MAX_RANGE - 1 })
    expect(z.ledger.account(agents[1].id)!.seq).toBe(0)
    await z.handle({ type: 'ledger.blocks', blocks: x.ledger.blocks(agents[0].id) })
    expect(z.ledger.account(agents[1].id)).toEqual(y.ledger.account())
    expect(out.rejected).toEqual([])
  })
})

describe('credit.transfer', () => {
  it('delivers a send straight to the payee, who acknowledges it', async () => {
    const [x, y] = await Promise.all([node(0), node(1)])
    await pull(x, y)
    const send = await x.ledger.transfer(agents[1].id, 3 * CREDIT, 'Completed text classification task')
    const msg = creditTransfer(send)
    expect(checkSyncBody(msg.type, { ...msg, type: undefined })).toBeUndefined()
    expect(checkSyncBody(msg.type, { ...msg, amount: 1 })).toMatch(/malformed/)
    expect(checkSyncBody('ledger.request', { account: 'x', from: 2, to: 1 })).toMatch(/malformed/)
    expect((await y.handle({ ...msg, reason: 'other' })).rejected.map(r => r.reason)).toEqual(['malformed'])
    expect((await y.handle(encodeSyncMessage(msg))).accepted).toBe(1)
    await y.ledger.idle()
    expect(y.ledger.account()!.balance).toBe(REG + 3 * CREDIT)
  })
})

describe('sync rejects bad input with a reason, counts it, and keeps state', () => {
  let x: LedgerSync, y: LedgerSync
  let send: Block, receive: Block
  const a = () => agents[0]
  const b = () => agents[1]

  beforeAll(async () => {
    x = await node(0)
    y = await node(1)
    await pull(x, y)
    await pull(y, x)
    send = await x.ledger.transfer(b().id, CREDIT)
    await pull(x, y)
    receive = y.ledger.blocks(b().id)[1]
    await pull(y, x)
  })

  async function expectRejected(input: unknown, reason: string, limit?: number) {
    const before = states(y)
    const count = y.counters[reason as keyof typeof y.counters] ?? 0
    const out = await y.handle(input, limit)
    expect(out.rejected.map(r => r.reason)).toContain(reason)
    expect(out.accepted).toBe(0)
    expect(y.counters[reason as keyof typeof y.counters]).toBe(count + 1)
    expect(states(y)).toEqual(before)
    return out
  }

  const next = async (fields: Partial<Block>, key = a().key) => {
    const s = x.ledger.account()!
    return signBlock({ ...send, seq: s.seq + 1, prev: s.head, ...fields }, key)
  }

  it('oversized messages', async () => {
    await expectRejected(new Uint8Array(MAX_GOSSIP_BYTES + 1), 'oversized', MAX_GOSSIP_BYTES)
  })

  it('malformed messages', async () => {
    await expectRejected(new TextEncoder().encode('{"type":"ledger.heads"'), 'malformed')
    await expectRejected(new Uint8Array([0xff, 0xfe]), 'malformed')
    await expectRejected({ type: 'ledger.mint' }, 'malformed')
    await expectRejected({ type: 'ledger.request', account: a().id, from: 0, to: MAX_RANGE }, 'malformed')
    await expectRejected({ type: 'ledger.request', account: 'x'.repeat(129), from: 0, to: 1 }, 'malformed')
    await expectRejected({ type: 'credit.transfer', amount: send.amount, reason: send.memo, timestamp: 'yesterday', block: { ...send, ts: 'yesterday' } }, 'malformed')
    await expectRejected({ type: 'ledger.heads', heads: [{ account: a().id, seq: -1, hash: send.sig }] }, 'malformed')
    await expectRejected({ type: 'ledger.blocks', blocks: [{ ...send, amount: '1' }] }, 'malformed')
    await expectRejected({ type: 'ledger.proof', proof: { a: send, b: send } }, 'malformed')
  })

  it('forged and altered blocks', async () => {
    await expectRejected({ type: 'ledger.blocks', blocks: [await next({ amount: 2 }, b().key)] }, 'bad-signature')
    await expectRejected({ type: 'ledger.blocks', blocks: [{ ...(await next({ amount: 2 })), amount: 3 }] }, 'bad-signature')
  })

  it('broken hash links and sequence gaps (and asks for the gap)', async () => {
    await expectRejected({ type: 'ledger.blocks', blocks: [await next({ prev: hashBlock(send).replace(/^./, c => (c === 'f' ? '0' : 'f')) })] }, 'bad-link')
    const s = x.ledger.account()!
    const out = await expectRejected({ type: 'ledger.blocks', blocks: [await next({ seq: s.seq + 3 })] }, 'gap')
    expect(out.requests).toContainEqual({ type: 'ledger.request', account: a().id, from: s.seq + 1, to: s.seq + 3 })
  })

  it('replayed receives', async () => {
    const t = y.ledger.account()!
    const replay = await signBlock({ ...receive, seq: t.seq + 1, prev: t.head }, b().key)
    await expectRejected({ type: 'ledger.blocks', blocks: [replay] }, 'replay')
  })

  it('overspends', async () => {
    await expectRejected({ type: 'ledger.blocks', blocks: [await next({ amount: REG, memo: 'more than a has' })] }, 'overspend')
  })

  it('double spends, gossiping the proof and counting nothing from the fork on', async () => {
    const twin = await signBlock({ ...send, counterparty: agents[2].id }, a().key)
    const count = y.counters['double-spend'] ?? 0
    const out = await y.handle({ type: 'ledger.blocks', blocks: [twin] })
    expect(out.rejected.map(r => r.reason)).toEqual(['double-spend'])
    expect(y.counters['double-spend']).toBe(count + 1)
    expect(out.gossip).toHaveLength(1)
    expect(y.ledger.isFlagged(a().id)).toBe(true)
    // The send was at the fork: a keeps its credits and b's receive of it credits nothing.
    expect(y.ledger.account(a().id)).toMatchObject({ seq: 0, balance: REG })
    expect(y.ledger.account()).toMatchObject({ seq: 1, balance: REG })
    const z = await node(2)
    const heard = await z.handle(out.gossip[0])
    expect(z.ledger.isFlagged(a().id)).toBe(true)
    expect(heard.gossip).toEqual(out.gossip)
    expect((await z.handle(out.gossip[0])).gossip).toEqual([])
  })
})
