import 'fake-indexeddb/auto'
import { describe, it, expect, beforeAll, afterAll, afterEach, vi } from 'vitest'
import { mkdtemp, rm, open, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CREDIT, hashBlock, signBlock } from '../../src/ledger/block.ts'
import { Ledger } from '../../src/ledger/ledger.ts'
import { makeProof } from '../../src/ledger/doublespend.ts'
import { LedgerSync } from '../../src/ledger/sync.ts'
import { openStore as openFileStore } from '../../src/ledger/store.ts'
import { openStore as openIdbStore } from '../../src/ledger/store.browser.ts'
import { MemoryStore, type LedgerStore, type StoredRecord } from '../../src/ledger/store-types.ts'
import { newAgent, pull, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

const MIN = 60 * 1000
let a: TestAgent, b: TestAgent, c: TestAgent
let dir: string
beforeAll(async () => {
  ;[a, b, c] = await Promise.all([newAgent(), newAgent(), newAgent()])
  dir = await mkdtemp(join(tmpdir(), 'ledger-input-'))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

/** A store that refuses writes while `full` is set, as a full disk or a browser over its quota does. */
class FillingStore extends MemoryStore {
  full = false
  async append(r: StoredRecord): Promise<void> {
    if (this.full) throw new Error('QuotaExceededError')
    await super.append(r)
  }
}

const ownSeqs = (records: StoredRecord[], account: string) =>
  records.flatMap(r => (r.kind === 'block' && r.block.account === account ? [r.block.seq] : []))


describe('file store on a damaged disk', () => {
  const log = (name: string) => join(dir, name, 'ledger.log')

  async function writeSome(name: string) {
    const s = await openFileStore(join(dir, name))
    const L = await Ledger.open(s, a.key, { clock: () => T0 })
    await L.transfer(b.id, CREDIT, 'one')
    await L.transfer(b.id, CREDIT, 'two')
    await L.close()
  }

  it('does not cut off intact records behind a frame damaged in the middle of the file', async () => {
    await writeSome('middle')
    const bytes = await readFile(log('middle'))
    // Inside the first frame's payload: the genesis, with three acknowledged frames behind it.
    bytes[20] ^= 0x01
    await writeFile(log('middle'), bytes)
    await expect(openFileStore(join(dir, 'middle'))).rejects.toThrow(/damaged at byte 0/)
    expect(await readFile(log('middle'))).toEqual(bytes)
  })

  describe('a write that fails or comes up short', () => {
    let proto: any
    let write: any
    beforeAll(async () => {
      const fh = await open(join(dir, 'probe'), 'a+')
      proto = Object.getPrototypeOf(fh)
      write = proto.write
      await fh.close()
    })
    afterEach(() => { vi.restoreAllMocks() })

    it('leaves no torn frame that would take later acknowledged records with it on the next open', async () => {
      const s = await openFileStore(join(dir, 'enospc'))
      const L = await Ledger.open(s, a.key, { clock: () => T0 })
      vi.spyOn(proto, 'write').mockImplementationOnce(async function (this: unknown, ...args: unknown[]) {
        await write.call(this, (args[0] as Uint8Array).subarray(0, 10))
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
      })
      await expect(L.transfer(b.id, CREDIT, 'disk full')).rejects.toMatchObject({ reason: 'store-failed', message: expect.stringMatching(/Free some storage/) })
      await L.transfer(b.id, CREDIT, 'room again')
      await L.close()
      const again = await openFileStore(join(dir, 'enospc'))
      expect(ownSeqs(await again.load(), a.id)).toEqual([0, 1])
      await again.close()
    })

    it('finishes a short write instead of acknowledging half a frame', async () => {
      const s = await openFileStore(join(dir, 'short'))
      const L = await Ledger.open(s, a.key, { clock: () => T0 })
      vi.spyOn(proto, 'write').mockImplementationOnce(async function (this: unknown, ...args: unknown[]) {
        return await write.call(this, (args[0] as Uint8Array).subarray(0, 10))
      })
      await L.transfer(b.id, CREDIT, 'short write')
      await L.close()
      const again = await openFileStore(join(dir, 'short'))
      expect(ownSeqs(await again.load(), a.id)).toEqual([0, 1])
      await again.close()
    })
  })
})

describe.each([
  ['file', (name: string) => openFileStore(join(dir, name))],
  ['IndexedDB', (name: string) => openIdbStore(`input-${name}`)]
])('%s store opened twice for one agent (a second process or tab)', (_, openStore) => {
  it('refuses the stale writer instead of letting it sign a second block for a taken seq', async () => {
    const s1 = await openStore('twice')
    const L1 = await Ledger.open(s1, a.key, { clock: () => T0 })
    const s2 = await openStore('twice')
    const L2 = await Ledger.open(s2, a.key, { clock: () => T0 })
    await L1.transfer(b.id, CREDIT, 'first writer')
    // Told what is wrong, and not to free storage, which would not help.
    await expect(L2.transfer(c.id, CREDIT, 'stale writer')).rejects.toMatchObject({ reason: 'store-failed', message: expect.not.stringMatching(/Free some storage/) })
    await L1.close()
    await L2.close()
    const s3 = await openStore('twice')
    expect(ownSeqs(await s3.load(), a.id)).toEqual([0, 1])
    const L3 = await Ledger.open(s3, a.key, { clock: () => T0 })
    expect(L3.account()).toMatchObject({ seq: 1 })
    await L3.close()
  })
})

describe('replaying the store', () => {
  it('starts after the clock stepped back, with peer blocks that were within the skew when accepted', async () => {
    const store = new MemoryStore()
    const L = await Ledger.open(store, a.key, { clock: () => T0 })
    const B = await Ledger.open(new MemoryStore(), b.key, { clock: () => T0 + 9 * MIN })
    expect(await L.ingest(B.blocks(b.id)[0])).toMatchObject({ status: 'accepted' })
    const again = await Ledger.open(store, a.key, { clock: () => T0 - 2 * MIN })
    expect(again.accounts()).toEqual(L.accounts())
  })
})

describe('a store that fails while a fork or proof arrives', () => {
  async function forked() {
    const A = await Ledger.open(new MemoryStore(), a.key, { clock: () => T0 })
    const send = await A.transfer(b.id, CREDIT)
    const twin = await signBlock({ ...send, counterparty: c.id }, a.key)
    return { genesis: A.blocks(a.id)[0], send, twin }
  }

  it('answers store-failed for the twin block and changes nothing; it proves the fork once there is room', async () => {
    const { genesis, send, twin } = await forked()
    const store = new FillingStore()
    const L = await Ledger.open(store, c.key, { clock: () => T0, autoReceive: false })
    await L.ingest(genesis)
    await L.ingest(send)
    store.full = true
    await expect(L.ingest(twin)).resolves.toMatchObject({ status: 'rejected', reason: 'store-failed' })
    expect(L.isFlagged(a.id)).toBe(false)
    store.full = false
    await expect(L.ingest(twin)).resolves.toMatchObject({ status: 'fork' })
    expect((await Ledger.open(store, c.key, { clock: () => T0 })).isFlagged(a.id)).toBe(true)
  })

  it('counts a proof it could not store as store-failed instead of throwing out of sync', async () => {
    const { send, twin } = await forked()
    const store = new FillingStore()
    const S = new LedgerSync(await Ledger.open(store, c.key, { clock: () => T0 }))
    store.full = true
    const out = await S.handle({ type: 'ledger.proof', proof: makeProof(send, twin) })
    expect(out.rejected.map(r => r.reason)).toEqual(['store-failed'])
    expect(out.gossip).toEqual([])
    expect(S.ledger.isFlagged(a.id)).toBe(false)
    store.full = false
    expect((await S.handle({ type: 'ledger.proof', proof: makeProof(send, twin) })).gossip).toHaveLength(1)
    expect(S.ledger.isFlagged(a.id)).toBe(true)
  })
})

describe('double-spend proofs from the network', () => {
  it('keep only the block fields, not whatever else the sender packed around them', async () => {
    const A = await Ledger.open(new MemoryStore(), a.key, { clock: () => T0 })
    const send = await A.transfer(b.id, CREDIT)
    const twin = await signBlock({ ...send, counterparty: c.id }, a.key)
    const store = new MemoryStore()
    const L = await Ledger.open(store, c.key, { clock: () => T0 })
    const padded = { a: { ...send, padding: 'x'.repeat(50_000) }, b: { ...twin, padding: 'y'.repeat(50_000) } }
    expect(await L.addProof(padded)).toBe(true)
    const stored = (await store.load()).find(r => r.kind === 'proof')
    expect(JSON.stringify(stored).length).toBeLessThan(5_000)
    expect(JSON.stringify(L.knownProofs()).length).toBeLessThan(5_000)
  })
})

describe('sync of a longer branch of a forked chain', () => {
  it('proves the fork instead of only refusing the block whose prev does not link', async () => {
    const Y = new LedgerSync(await Ledger.open(new MemoryStore(), b.key, { clock: () => T0 }))
    const Z = new LedgerSync(await Ledger.open(new MemoryStore(), c.key, { clock: () => T0 }))
    const A = await Ledger.open(new MemoryStore(), a.key, { clock: () => T0 })
    const send = await A.transfer(b.id, CREDIT, 'to b')
    const twin = await signBlock({ ...send, counterparty: c.id, memo: 'to c' }, a.key)
    const after = await signBlock({ ...twin, seq: 2, prev: hashBlock(twin), amount: 2 * CREDIT, memo: 'more to c' }, a.key)
    const genesis = A.blocks(a.id)[0]
    await Y.handle({ type: 'ledger.blocks', blocks: [genesis, send] })
    await Z.handle({ type: 'ledger.blocks', blocks: [genesis, twin, after] })
    expect(Y.ledger.isFlagged(a.id)).toBe(false)
    await pull(Z, Y)
    expect(Y.ledger.isFlagged(a.id)).toBe(true)
  })
})
