import { describe, it, expect, beforeAll } from 'vitest'
import { Reputation, signEvidence, signRating } from '../../src/ledger/reputation.ts'
import { newAgent, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

let honest: TestAgent[], sybils: TestAgent[]
beforeAll(async () => {
  honest = await Promise.all(Array.from({ length: 5 }, newAgent))
  sybils = await Promise.all(Array.from({ length: 8 }, newAgent))
})

const rate = (from: TestAgent, to: TestAgent, score: number, ref = 'task') => signRating({ rater: from.id, ratee: to.id, score, ref, ts: T0 }, from.key)

async function honestNetwork(): Promise<Reputation> {
  const rep = new Reputation([honest[0].id])
  for (const x of honest) for (const y of honest) if (x !== y) await rep.addRating(await rate(x, y, 1))
  return rep
}

describe('reputation', () => {
  it('accepts only ratings signed by the rater, in range, about someone else', async () => {
    const rep = new Reputation([honest[0].id])
    expect(await rep.addRating(await rate(honest[0], honest[1], 1))).toBe(true)
    expect(await rep.addRating({ ...(await rate(honest[0], honest[1], 1)), score: 0.5 })).toBe(false)
    expect(await rep.addRating(await rate(honest[0], honest[1], 2))).toBe(false)
    expect(await rep.addRating(await rate(honest[0], honest[0], 1))).toBe(false)
    expect(await rep.addRating({ ...(await rate(honest[2], honest[1], 1)), rater: honest[3].id })).toBe(false)
  })

  async function withRing(size: number, attackEdge: boolean) {
    const rep = await honestNetwork()
    const ring = sybils.slice(0, size)
    for (const x of ring) for (const y of ring) if (x !== y) for (const ref of ['a', 'b', 'c']) await rep.addRating(await rate(x, y, 1, ref))
    // One honest peer once had a good task from one Sybil: the ring's only attack edge.
    if (attackEdge) await rep.addRating(await rate(honest[4], ring[0], 1, 'real'))
    const s = rep.scores()
    return {
      ring: ring.reduce((sum, x) => sum + s.get(x.id)!, 0),
      maxSybil: Math.max(...ring.map(x => s.get(x.id)!)),
      meanHonest: honest.reduce((sum, x) => sum + s.get(x.id)!, 0) / honest.length
    }
  }

  it('gives a Sybil ring that rates itself little, however many identities it makes', async () => {
    const small = await withRing(4, true)
    const large = await withRing(8, true)
    // The ring's total is bounded by what crosses its one attack edge, not by its size.
    expect(large.ring).toBeLessThan(small.ring * 1.1)
    expect(large.ring).toBeLessThanOrEqual(large.meanHonest)
    expect(large.maxSybil).toBeLessThan(large.meanHonest / 2)
    expect((await withRing(8, false)).ring).toBeLessThan(1e-9)
  })

  it('lowers a peer caught by a spot check', async () => {
    const rep = await honestNetwork()
    const before = rep.score(honest[3].id)
    const ev = { checker: honest[1].id, accused: honest[3].id, session: 's', step: 7, expected: 'aa', got: 'bb', ts: T0 }
    expect(await rep.addEvidence({ ...(await signEvidence(ev, honest[1].key)), got: 'cc' })).toBe(false)
    expect(await rep.addEvidence(await signEvidence(ev, honest[1].key))).toBe(true)
    expect(rep.score(honest[3].id)).toBeLessThan(before * 0.9)
  })
})
