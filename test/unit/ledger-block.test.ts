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

describe('test vector of docs/protocol-ledger.md', () => {
  it('reproduces the documented bytes, hash and signature of the example genesis', async () => {
    const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const { bytesToHex } = await import('@noble/hashes/utils.js')
    const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(1))
    const account = peerIdFromPrivateKey(key).toString()
    expect(account).toBe('12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5')
    const g = await signBlock({ v: 1, account, seq: 0, prev: ZERO_HASH, type: 'genesis', amount: 10_000_000, fee: 0, counterparty: '', ref: ZERO_HASH, ts: 1761755712000, memo: 'owner://andiroene' }, key)
    expect(bytesToHex(encodeBlock(g))).toBe(
      '010034313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b504835' +
      '0000000000000000' + '00'.repeat(32) + '07' + '67656e65736973' + '0000000000989680' + '0000000000000000' + '0000' + '00'.repeat(32) +
      '0000019a30d2ca00' + '0011' + '6f776e65723a2f2f616e6469726f656e65'
    )
    expect(hashBlock(g)).toBe('08094c254b42dc12701246be6fbd4a00cd0767dbf5cdf288d2e13944c6a6f3a7')
    expect(g.sig).toBe('3c0e8b223272191fb1583909967f46fdd373d97f489ec51024677741fa60e0e950dd026c39645ee3c64015c36c338ca6bc8f134bc31de852c8448b02d669740b')
  })
})
