// An agent whose stored chain is behind the one the mesh holds (a restored backup, a lost
// ledger file under a kept key) must take its own newer blocks back before it signs again, or
// its next block forks its own chain and the mesh proves a double spend against it.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CREDIT } from '../../src/ledger/block.ts'
import { openStore, replaceStore, salvageStore } from '../../src/ledger/store.ts'
import { rebuildLedger } from '../../src/ledger/repair.ts'
import { Ledger } from '../../src/ledger/ledger.ts'
import { MemoryStore } from '../../src/ledger/store-types.ts'
import type { StoredRecord } from '../../src/ledger/store-types.ts'
import { OwnChainCheck, CONFIRMING_PEERS, type OwnChainPorts } from '../../src/peer/services/own-chain.ts'
import { newAgent, T0, type TestAgent } from '../helpers/ledger-fixtures.ts'

let a: TestAgent, b: TestAgent
beforeAll(async () => { [a, b] = await Promise.all([newAgent(), newAgent()]) })

const clock = (): number => T0

/** A store that starts with `records` (a backup). */
async function storeWith (records: StoredRecord[]): Promise<MemoryStore> {
  const s = new MemoryStore()
  for (const r of records) await s.append(r)
  return s
}

function gate (): { open: () => void, promise: Promise<void> } {
  let open!: () => void
  const promise = new Promise<void>(resolve => { open = resolve })
  return { open, promise }
}

const tick = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 0)) }

const settled = async (p: Promise<unknown>): Promise<boolean> => await Promise.race([p.then(() => true, () => true), new Promise<boolean>(resolve => setTimeout(() => { resolve(false) }, 50))])

/** Alpha's chain as the mesh holds it (seq 0-3), and a backup of alpha's store taken at seq 1. */
async function history (): Promise<{ mesh: Ledger, backup: StoredRecord[] }> {
  const store = new MemoryStore()
  const A = await Ledger.open(store, a.key, { clock, autoReceive: false })
  await A.transfer(b.id, CREDIT, 'before the backup')
  const backup = await store.load()
  await A.transfer(b.id, CREDIT, 'after the backup')
  await A.transfer(b.id, CREDIT, 'after the backup, too')
  const mesh = await Ledger.open(new MemoryStore(), b.key, { clock, autoReceive: false })
  for (const blk of A.blocks(a.id)) expect((await mesh.ingest(blk)).status).toBe('accepted')
  return { mesh, backup }
}

describe('an agent restored from an old backup', () => {
  it('signing at once from the stale head forks its own chain (what the hold prevents)', async () => {
    const { mesh, backup } = await history()
    const restored = await Ledger.open(await storeWith(backup), a.key, { clock, autoReceive: false })
    const send = await restored.transfer(b.id, CREDIT, 'from a stale head')
    expect(send.seq).toBe(2)
    expect((await mesh.ingest(send)).status).toBe('fork')
    expect(mesh.isFlagged(a.id)).toBe(true)
  })

  it('signs nothing while held, takes its newer blocks back, then signs after them', async () => {
    const { mesh, backup } = await history()
    const hold = gate()
    const restored = await Ledger.open(await storeWith(backup), a.key, { clock, autoReceive: false, signAfter: hold.promise })
    expect(restored.signingHeld).toBe(true)
    const pending = restored.transfer(b.id, CREDIT, 'after the restore')
    expect(await settled(pending)).toBe(false)
    expect(restored.account()!.seq).toBe(1)
    // What a peer answers to the catch-up request.
    for (const blk of mesh.blocks(a.id, 2)) expect((await restored.ingest(blk)).status).toBe('accepted')
    hold.open()
    const send = await pending
    expect(send.seq).toBe(4)
    expect(restored.signingHeld).toBe(false)
    expect((await mesh.ingest(send)).status).toBe('accepted')
    expect(mesh.isFlagged(a.id)).toBe(false)
    expect(mesh.account(a.id)).toEqual(restored.account())
  })

  it('whose ledger was lost under a kept key writes no second genesis when the mesh has its chain', async () => {
    const { mesh } = await history()
    const hold = gate()
    const fresh = await Ledger.open(new MemoryStore(), a.key, { clock, autoReceive: false, signAfter: hold.promise })
    expect(fresh.account()!.seq).toBe(-1)
    for (const blk of mesh.blocks(a.id)) expect((await fresh.ingest(blk)).status).toBe('accepted')
    hold.open()
    const send = await fresh.transfer(b.id, CREDIT, 'on the recovered chain')
    expect(send.seq).toBe(4)
    expect(fresh.blocks(a.id).filter(x => x.type === 'genesis')).toHaveLength(1)
    expect((await mesh.ingest(send)).status).toBe('accepted')
  })

  it('still writes its genesis once released when nobody holds its chain', async () => {
    const hold = gate()
    const L = await Ledger.open(new MemoryStore(), a.key, { clock, autoReceive: false, signAfter: hold.promise })
    await new Promise(resolve => setTimeout(resolve, 20))
    expect(L.account()!.seq).toBe(-1)
    hold.open()
    // The held genesis is queued once the release has gone round the microtasks.
    await tick()
    await L.idle()
    expect(L.blocks(a.id).map(x => x.type)).toEqual(['genesis'])
  })
})

/** Peers and a clock under the test's control. */
function ports (known: string[], answers: Record<string, 'ok' | 'fail' | 'never'>) {
  const newPeer: Array<(p: string) => void> = []
  const timers: Array<() => void> = []
  const asked: string[] = []
  const p: OwnChainPorts = {
    peers: () => known,
    onNewPeer: l => { newPeer.push(l) },
    catchUp: async peer => {
      asked.push(peer)
      if (answers[peer] === 'fail') throw new Error('unreachable')
      if (answers[peer] === 'never') await new Promise(() => {})
    },
    later: (_ms, fn) => { timers.push(fn) }
  }
  return { p, asked, appear: (peer: string) => { known.push(peer); for (const l of newPeer) l(peer) }, timeout: () => { for (const t of timers) t() } }
}

describe('the own-chain check', () => {
  it(`goes on once ${CONFIRMING_PEERS} peers answered, asking peers that appear later too`, async () => {
    const w = ports(['p1'], { p1: 'ok', p2: 'fail', p3: 'ok', p4: 'never' })
    const check = new OwnChainCheck(w.p)
    w.appear('p4')
    await tick()
    expect(check.status).toEqual({ state: 'checking', answered: 1 })
    w.appear('p2')
    await tick()
    expect(check.status.state).toBe('checking')
    w.appear('p3')
    await check.done
    expect(check.status).toEqual({ state: 'confirmed', answered: 2 })
    expect(w.asked).toEqual(['p1', 'p4', 'p2', 'p3'])
  })

  it('goes on with one answer when that was every peer there is', async () => {
    const w = ports(['p1'], { p1: 'ok' })
    const check = new OwnChainCheck(w.p)
    await check.done
    expect(check.status).toEqual({ state: 'confirmed', answered: 1 })
  })

  it('waits for a first peer, and gives up at the deadline as unconfirmed when none answered', async () => {
    const w = ports([], { p1: 'fail' })
    const check = new OwnChainCheck(w.p)
    await tick()
    expect(check.status.state).toBe('checking')
    w.appear('p1')
    await tick()
    expect(check.status.state).toBe('checking')
    w.timeout()
    await check.done
    expect(check.status).toEqual({ state: 'unconfirmed', answered: 0 })
    // Nobody is asked once it is over.
    w.appear('p9')
    expect(w.asked).toEqual(['p1'])
  })
})

describe('repairing a damaged store', () => {
  let dir: string
  beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'ledger-repair-')) })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('keeps every intact record, leaves out what no longer links, and the agent takes its lost blocks back before it signs', async () => {
    // Alpha's chain (0-3) and beta's genesis, in alpha's file; beta holds alpha's whole chain.
    const { mesh } = await history()
    const A = await Ledger.open(await openStore(dir), a.key, { clock, autoReceive: false, signAfter: new Promise(() => {}) })
    for (const blk of [...mesh.blocks(b.id), ...mesh.blocks(a.id)]) expect((await A.ingest(blk)).status).toBe('accepted')
    await A.close()
    // One byte of alpha's seq-2 block goes bad in the middle of the file.
    const file = join(dir, 'ledger.log')
    const original = await readFile(file)
    const at = original.indexOf('after the backup"')
    expect(at).toBeGreaterThan(0)
    const damaged = Buffer.from(original)
    damaged[at] ^= 0x01
    await writeFile(file, damaged)
    await expect(openStore(dir)).rejects.toThrow(/damaged at byte \d+ \(intact records follow.*clawnet repair-ledger/)

    const salvaged = await salvageStore(dir)
    expect(salvaged.damaged).toHaveLength(1)
    expect(salvaged.records).toHaveLength(4)
    const rebuilt = await rebuildLedger(salvaged.records, a.key)
    // Seq 3 is intact but follows the lost seq 2.
    expect(rebuilt.dropped.map(x => [x.account, x.seq])).toEqual([[a.id, 3]])
    expect(rebuilt.records.map(r => r.kind === 'block' ? `${r.block.account === a.id ? 'a' : 'b'}${r.block.seq}` : 'proof')).toEqual(['b0', 'a0', 'a1'])
    await replaceStore(dir, rebuilt.records, 'ledger.log.damaged')
    expect(await readFile(join(dir, 'ledger.log.damaged'))).toEqual(damaged)
    expect((await readdir(dir)).sort()).toEqual(['ledger.log', 'ledger.log.damaged'])

    const hold = gate()
    const repaired = await Ledger.open(await openStore(dir), a.key, { clock, autoReceive: false, signAfter: hold.promise })
    expect(repaired.account()!.seq).toBe(1)
    for (const blk of mesh.blocks(a.id, 2)) expect((await repaired.ingest(blk)).status).toBe('accepted')
    hold.open()
    const send = await repaired.transfer(b.id, CREDIT, 'after the repair')
    expect(send.seq).toBe(4)
    expect((await mesh.ingest(send)).status).toBe('accepted')
    await repaired.close()
  })
})
