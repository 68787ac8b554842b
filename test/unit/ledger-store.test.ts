import 'fake-indexeddb/auto'
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, rm, appendFile, stat, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CREDIT } from '../../src/ledger/block.ts'
import { Ledger } from '../../src/ledger/ledger.ts'
import { openStore as openFileStore } from '../../src/ledger/store.ts'
import { openStore as openIdbStore } from '../../src/ledger/store.browser.ts'
import { MemoryStore, type LedgerStore, type StoredRecord } from '../../src/ledger/store-types.ts'
import { newAgent, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

let a: TestAgent, b: TestAgent
let dir: string
beforeAll(async () => {
  ;[a, b] = await Promise.all([newAgent(), newAgent()])
  dir = await mkdtemp(join(tmpdir(), 'ledger-store-'))
})
afterAll(() => rm(dir, { recursive: true, force: true }))

async function writeSome(store: LedgerStore) {
  const L = await Ledger.open(store, a.key, { clock: () => T0 })
  await L.transfer(b.id, CREDIT, 'one')
  await L.reserveTask(b.id, 2 * CREDIT, 'task')
  return L.account()!
}

describe.each([
  ['file', (name: string) => openFileStore(join(dir, name))],
  ['IndexedDB', (name: string) => openIdbStore(name)]
])('%s store', (_, openStore) => {
  it('rebuilds the same chain after close and reopen', async () => {
    const s1 = await openStore('reopen')
    const before = await writeSome(s1)
    await s1.close()
    const s2 = await openStore('reopen')
    const L = await Ledger.open(s2, a.key, { clock: () => T0 })
    expect(L.account()).toEqual(before)
    expect(L.account()).toMatchObject({ seq: 2, pending: 2 * CREDIT })
    expect((await s2.load()).map(r => r.kind === 'block' && r.block.seq)).toEqual([0, 1, 2])
    await L.close()
  })
})

describe('file store crash recovery', () => {
  const log = (name: string) => join(dir, name, 'ledger.log')

  it('drops a torn last frame, keeps what came before, and appends after it', async () => {
    const s1 = await openFileStore(join(dir, 'torn'))
    const before = await writeSome(s1)
    await s1.close()
    const whole = (await stat(log('torn'))).size
    await appendFile(log('torn'), new Uint8Array([0, 0, 1, 0, 9, 9, 9, 9, 123, 34]))
    const s2 = await openFileStore(join(dir, 'torn'))
    expect((await stat(log('torn'))).size).toBe(whole)
    const L = await Ledger.open(s2, a.key, { clock: () => T0 })
    expect(L.account()).toEqual(before)
    await L.transfer(b.id, CREDIT)
    await s2.close()
    const s3 = await openFileStore(join(dir, 'torn'))
    expect(await s3.load()).toHaveLength(4)
    await s3.close()
  })

  it('drops a last frame whose checksum fails', async () => {
    const s1 = await openFileStore(join(dir, 'crc'))
    await writeSome(s1)
    await s1.close()
    const bytes = await readFile(log('crc'))
    bytes[bytes.length - 2] ^= 0xff
    await writeFile(log('crc'), bytes)
    const s2 = await openFileStore(join(dir, 'crc'))
    expect((await s2.load()).map(r => r.kind === 'block' && r.block.type)).toEqual(['genesis', 'send'])
    await s2.close()
  })
})

/** A store that refuses writes while `full` is set, as a full disk or a browser over its quota does. */
class FillingStore extends MemoryStore {
  full = false
  async append (r: StoredRecord): Promise<void> {
    if (this.full) throw new Error('QuotaExceededError')
    await super.append(r)
  }
}

describe('a store that refuses a write', () => {
  it('leaves the ledger unchanged and says so, for an own block and for a peer block; both go through once it has room', async () => {
    const store = new FillingStore()
    const L = await Ledger.open(store, a.key, { clock: () => T0 })
    const B = await Ledger.open(new MemoryStore(), b.key, { clock: () => T0 })
    const genesisB = B.blocks(b.id)[0]
    const before = L.account()
    store.full = true
    await expect(L.transfer(b.id, CREDIT, 'no room')).rejects.toThrow(/store-failed: could not save this agent's send block \(QuotaExceededError\); nothing changed/)
    expect(L.account()).toEqual(before)
    expect(await L.ingest(genesisB)).toMatchObject({ status: 'rejected', reason: 'store-failed' })
    expect(L.chainHead(b.id)).toBeUndefined()

    store.full = false
    await L.transfer(b.id, CREDIT, 'room again')
    expect(await L.ingest(genesisB)).toMatchObject({ status: 'accepted' })
    // What is in memory is what a restart replays.
    const again = await Ledger.open(store, a.key, { clock: () => T0 })
    expect(again.accounts()).toEqual(L.accounts())
    expect(again.account()).toMatchObject({ seq: 1, balance: before!.balance - CREDIT })
  })
})
