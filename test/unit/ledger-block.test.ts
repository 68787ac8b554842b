import { describe, it, expect, beforeAll } from 'vitest'
import { encodeBlock, hashBlock, parseBlock, signBlock, verifyBlockSignature, ZERO_HASH, type UnsignedBlock } from '../../src/ledger/block.ts'
import { newAgent, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

let alice: TestAgent, bob: TestAgent
let base: UnsignedBlock
beforeAll(async () => {
  alice = await newAgent()
  bob = await newAgent()
  base = { v: 1, account: alice.id, seq: 1, prev: 'ab'.repeat(32), type: 'send', amount: 3_000_000, fee: 0, counterparty: bob.id, ref: ZERO_HASH, ts: T0, memo: 'Completed text classification task' }
})

describe('block encoding', () => {
  it('is deterministic and independent of key order', () => {
    const shuffled = Object.fromEntries(Object.entries(base).reverse()) as UnsignedBlock
    expect(encodeBlock(shuffled)).toEqual(encodeBlock(base))
    expect(hashBlock(shuffled)).toBe(hashBlock(base))
  })

  it('changes with every field', () => {
    const variants: Partial<UnsignedBlock>[] = [
      { seq: 2 }, { prev: 'cd'.repeat(32) }, { type: 'reserve' }, { amount: 3_000_001 }, { fee: 1 },
      { counterparty: alice.id }, { ref: '01'.repeat(32) }, { ts: T0 + 1 }, { memo: 'x' }, { account: bob.id }
    ]
    const hashes = new Set(variants.map(v => hashBlock({ ...base, ...v })))
    expect(hashes.size).toBe(variants.length)
    expect(hashes.has(hashBlock(base))).toBe(false)
  })

  it('starts with the version and the length-prefixed account', () => {
    const bytes = encodeBlock(base)
    expect(bytes[0]).toBe(1)
    const len = (bytes[1] << 8) | bytes[2]
    expect(new TextDecoder().decode(bytes.subarray(3, 3 + len))).toBe(alice.id)
  })
})

describe('block signatures', () => {
  it('verify for the account key and fail for any change or another key', async () => {
    const b = await signBlock(base, alice.key)
    expect(await verifyBlockSignature(b)).toBe(true)
    expect(await verifyBlockSignature({ ...b, amount: b.amount + 1 })).toBe(false)
    expect(await verifyBlockSignature({ ...b, memo: 'other' })).toBe(false)
    const byBob = await signBlock(base, bob.key)
    expect(await verifyBlockSignature(byBob)).toBe(false)
  })

  it('reject an account that is not a PeerId', async () => {
    const b = await signBlock(base, alice.key)
    expect(await verifyBlockSignature({ ...b, account: 'QmNotAPeerId' })).toBe(false)
  })
})

describe('parseBlock', () => {
  it('accepts a signed block and drops unknown fields', async () => {
    const b = await signBlock(base, alice.key)
    const parsed = parseBlock(JSON.parse(JSON.stringify({ ...b, extra: 1 })))
    expect(parsed).toEqual(b)
  })

  it.each<[string, Record<string, unknown>]>([
    ['version', { v: 2 }], ['negative seq', { seq: -1 }], ['fractional amount', { amount: 1.5 }],
    ['unsafe amount', { amount: 2 ** 60 }], ['short prev', { prev: 'ab' }], ['upper-case hash', { ref: 'AB'.repeat(32) }],
    ['unknown type', { type: 'mint' }], ['long memo', { memo: 'é'.repeat(129) }], ['bad counterparty', { counterparty: 'bob@evil' }],
    ['string ts', { ts: '2025-10-29T16:35:12Z' }], ['missing sig', { sig: undefined }], ['short sig', { sig: '00' }]
  ])('rejects %s as malformed', async (_, patch) => {
    const b = await signBlock(base, alice.key)
    expect(() => parseBlock({ ...b, ...patch })).toThrow(/malformed/)
  })

  it('rejects non-objects', () => {
    for (const x of [null, 1, 'block', []]) expect(() => parseBlock(x)).toThrow(/malformed/)
  })
})
