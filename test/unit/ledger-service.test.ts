import { describe, it, expect, beforeAll } from 'vitest'
import { CREDIT } from '../../src/ledger/block.ts'
import { Ledger } from '../../src/ledger/ledger.ts'
import { MemoryStore } from '../../src/ledger/store-types.ts'
import { LedgerSync, encodeSyncMessage } from '../../src/ledger/sync.ts'
import { toMicro, formatCredits } from '../../src/peer/services/credits.ts'
import { claimMentorBonuses } from '../../src/peer/services/mentor.ts'
import { frameType } from '../../src/peer/services/ledger-wire.ts'
import { QuietBackoff } from '../../src/peer/services/quiet-backoff.ts'
import { newAgent, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

describe('credits in the API and the form', () => {
  it('converts credits to exact micro-credits and refuses what would be rounded or is not an amount', () => {
    expect(toMicro(2.5)).toBe(2_500_000)
    expect(toMicro('0.000001')).toBe(1)
    expect(toMicro('1.25')).toBe(1_250_000)
    for (const bad of [0, -1, 0.0000001, '1.2345678', 'abc', '', null, undefined, Infinity, NaN, {}, 1e300]) expect(toMicro(bad), String(bad)).toBeUndefined()
    expect(formatCredits(8_750_000)).toBe('8.75')
    expect(formatCredits(695_000)).toBe('0.695')
  })

  it('reads a frame type without trusting the frame', () => {
    expect(frameType(new TextEncoder().encode('{"type":"ledger.request"}'))).toBe('ledger.request')
    expect(frameType(new Uint8Array([0xff, 0xfe]))).toBeUndefined()
    expect(frameType(new TextEncoder().encode('[1]'))).toBeUndefined()
  })
})

describe('mentor bonuses', () => {
  let a: TestAgent, b: TestAgent, c: TestAgent
  beforeAll(async () => { [a, b, c] = await Promise.all([newAgent(), newAgent(), newAgent()]) })

  async function world () {
    const clock = () => T0
    const [la, lb, lc] = await Promise.all([a, b, c].map(async x => await Ledger.open(new MemoryStore(), x.key, { clock })))
    const all = [la, lb, lc].map(l => new LedgerSync(l))
    // Everyone learns everything, as gossip and streams would arrange.
    const share = async () => {
      // Two rounds: a receive made in the first round reaches the agents ahead of its maker in the second.
      for (const from of [...all, ...all]) {
        for (const to of all) {
          if (from === to) continue
          for (const s of from.ledger.accounts()) await to.handle(encodeSyncMessage({ type: 'ledger.blocks', blocks: from.ledger.blocks(s.account) }))
          await to.ledger.idle()
        }
      }
    }
    return { la, lb, lc, share }
  }

  it('claims once per mentee, only after the mentee earned from a third party, and every verifier accepts it', async () => {
    const { la, lb, lc, share } = await world()
    await share()
    await la.transfer(b.id, CREDIT, 'help')
    await share()
    expect(await claimMentorBonuses(la)).toBe(0)
    await lc.transfer(b.id, CREDIT / 2, 'work')
    await share()
    expect(await claimMentorBonuses(la)).toBe(1)
    expect(await claimMentorBonuses(la)).toBe(0)
    await share()
    const grant = la.blocks(a.id).at(-1)!
    expect(grant).toMatchObject({ type: 'grant', memo: 'mentor', counterparty: b.id, amount: 2 * CREDIT })
    for (const l of [lb, lc]) expect(l.account(a.id)).toEqual(la.account())
  })

  it('gives nothing for help below the minimum', async () => {
    const { la, lc, share } = await world()
    await share()
    await la.transfer(b.id, CREDIT - 1, 'a little')
    await lc.transfer(b.id, CREDIT, 'work')
    await share()
    expect(await claimMentorBonuses(la)).toBe(0)
  })
})

describe('periodic heads', () => {
  it('back off while nothing changes, up to the cap, and return to the full rate on news', () => {
    const b = new QuietBackoff(4000, 16)
    const sent: number[] = []
    // The agent's heartbeat asks every 4 s.
    for (let t = 0; t <= 300_000; t += 4000) if (b.take(t)) sent.push(t)
    expect(sent.slice(0, 5)).toEqual([0, 4000, 12_000, 28_000, 60_000])
    const gaps = sent.slice(1).map((t, i) => t - sent[i])
    expect(Math.max(...gaps)).toBe(64_000)
    expect(gaps.at(-1)).toBe(64_000)
    b.reset()
    expect(b.take(300_000)).toBe(true)
    expect(b.take(302_000)).toBe(false)
    expect(b.take(304_000)).toBe(true)
  })
})
