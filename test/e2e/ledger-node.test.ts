import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, startRelay } from '../helpers/relay.ts'
import { startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'
import { hashBlock, verifyBlockSignature } from '../../src/ledger/block.ts'

/** Two headless peers paying each other through their HTTP APIs, one killed and restarted on the same disk. */
describe('ledger between headless peers', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let a: PeerProcess
  let b: PeerProcess
  let bDir: string
  let aId: string
  let bId: string

  const startB = async (): Promise<PeerProcess> => await startPeerProcess(relay.url, 'beta', ['--announce', '3', '--data', bDir])
  const balance = async (p: PeerProcess, id: string): Promise<number | undefined> => {
    const res = await fetch(`${p.api}/v1/ledger/accounts/${id}`)
    return res.ok ? (await res.json()).balance : undefined
  }

  beforeAll(async () => {
    relay = await startRelay()
    bDir = await mkdtemp(join(tmpdir(), 'clawnet-peer-keep-'))
    a = await startPeerProcess(relay.url, 'alpha', ['--announce', '3'])
    b = await startB()
    aId = (await a.get('/v1/mesh/self')).id
    bId = (await b.get('/v1/mesh/self')).id
  })

  afterAll(async () => {
    await a?.stop()
    await b?.stop()
    await relay?.stop()
    await rm(bDir, { recursive: true, force: true })
  })

  it('each agent starts with the registration grant and learns the other\'s chain', async () => {
    expect((await a.get('/v1/ledger/account')).balance).toBe(10)
    await waitFor('alpha to hold beta\'s genesis', async () => await balance(a, bId) === 10, 30_000)
    await waitFor('beta to hold alpha\'s genesis', async () => await balance(b, aId) === 10, 30_000)
  })

  it('a transfer carries both signatures and both agents agree on the balances', async () => {
    const res = await a.post('/v1/ledger/transfer', { to: bId, amount: 2.5, reason: 'for the summary' })
    expect(res.status).toBe(201)
    expect(res.body.acknowledged).toBe(true)
    expect(res.body.block).toMatchObject({ account: aId, counterparty: bId, type: 'send', amount: 2_500_000, memo: 'for the summary' })
    expect(res.body.receive).toMatchObject({ account: bId, counterparty: aId, type: 'receive', amount: 2_500_000, ref: res.body.hash })
    expect(await verifyBlockSignature(res.body.block)).toBe(true)
    expect(await verifyBlockSignature(res.body.receive)).toBe(true)
    expect((await a.get('/v1/ledger/account')).balance).toBe(7.5)
    expect((await b.get('/v1/ledger/account')).balance).toBe(12.5)
    await waitFor('alpha to see beta\'s receive', async () => await balance(a, bId) === 12.5)
    expect(await balance(b, aId)).toBe(7.5)
    const blocks = (await b.get(`/v1/ledger/blocks?account=${bId}`)).blocks
    expect(blocks.map((x: any) => x.type)).toEqual(['genesis', 'receive'])
    expect(blocks[1].ref).toBe(hashBlock(res.body.block))
  })

  it('refuses an overspend and malformed requests with clear 4xx errors, and nothing changes', async () => {
    const over = await a.post('/v1/ledger/transfer', { to: bId, amount: 7.500001, reason: 'too much' })
    expect(over.status).toBe(402)
    expect(over.body.error).toMatch(/overspend/)
    for (const [body, status, msg] of [
      [{ to: bId, amount: -1 }, 400, /amount/],
      [{ to: bId, amount: 0.0000001 }, 400, /6 decimals/],
      [{ to: 'not-an-id', amount: 1 }, 400, /agent id/],
      [{ to: aId, amount: 1 }, 400, /self-transfer/],
      [{ amount: 1 }, 400, /body must be/]
    ] as const) {
      const r = await a.post('/v1/ledger/transfer', body)
      expect(r.status, JSON.stringify(body)).toBe(status)
      expect(r.body.error).toMatch(msg)
    }
    expect((await fetch(`${a.api}/v1/ledger/accounts/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq`)).status).toBe(404)
    const acct = await a.get('/v1/ledger/account')
    expect(acct).toMatchObject({ balance: 7.5, seq: 1 })
  })

  it('a peer killed mid-way and restarted on the same disk loses nothing, and catches up on what it missed', async () => {
    const before = (await b.get(`/v1/ledger/blocks?account=${bId}`)).blocks
    expect(before.length).toBe(2)
    b.child.kill('SIGKILL')
    await new Promise(resolve => b.child.once('exit', resolve))
    // Paid while beta is down: the send waits on alpha's chain until beta is back.
    const res = await a.post('/v1/ledger/transfer', { to: bId, amount: 1, reason: 'while you were out' })
    expect(res.status).toBe(201)
    expect(res.body.acknowledged).toBe(false)
    b = await startB()
    expect((await b.get('/v1/mesh/self')).id).toBe(bId)
    // Sync may already have appended to it, but what beta had written is all there, unchanged.
    expect((await b.get(`/v1/ledger/blocks?account=${bId}&to=${before.length - 1}`)).blocks).toEqual(before)
    await waitFor('beta to receive the send made while it was down', async () => (await b.get('/v1/ledger/account')).balance === 13.5, 30_000)
    await waitFor('alpha to see beta\'s receive', async () => await balance(a, bId) === 13.5, 30_000)
    expect((await a.get('/v1/ledger/account')).balance).toBe(6.5)
    expect((await b.get('/v1/ledger/diagnostics')).audit).toMatchObject({ grants: 20_000_000, burned: 0, balances: 20_000_000, inFlight: 0, supply: 20_000_000 })
  })
  it('restored from an old backup, a peer takes its newer blocks back from the mesh before it signs again: no fork', async () => {
    const backup = await mkdtemp(join(tmpdir(), 'clawnet-peer-backup-'))
    const stopB = async (): Promise<void> => {
      b.child.kill('SIGTERM')
      if (b.child.exitCode == null) await new Promise(resolve => b.child.once('exit', resolve))
    }
    try {
      await stopB()
      await cp(bDir, backup, { recursive: true })
      b = await startB()
      // Signed after the backup: only the mesh (alpha) still holds this block once the backup is back.
      const later = await b.post('/v1/ledger/transfer', { to: aId, amount: 0.5, reason: 'after the backup' })
      expect(later.status).toBe(201)
      const head = (await b.get('/v1/ledger/account')).seq
      await waitFor('alpha to hold beta\'s newest block', async () => (await a.get(`/v1/ledger/accounts/${bId}`)).seq === head, 30_000)
      await stopB()
      await rm(bDir, { recursive: true, force: true })
      await cp(backup, bDir, { recursive: true })
      b = await startB()
      const res = await b.post('/v1/ledger/transfer', { to: aId, amount: 0.25, reason: 'after the restore' })
      expect(res.status).toBe(201)
      // The new send follows the block the backup lacked, instead of taking its seq.
      expect(res.body.block.seq).toBe(head + 1)
      expect((await b.get('/v1/ledger/diagnostics')).ownChain).toMatchObject({ state: 'confirmed' })
      await waitFor('alpha to take the new send', async () => (await a.get(`/v1/ledger/accounts/${bId}`)).seq >= head + 1, 30_000)
      const seen = await a.get('/v1/ledger/diagnostics')
      expect(seen.flagged).toEqual([])
      expect(seen.counters['double-spend'] ?? 0).toBe(0)
      expect((await a.get(`/v1/ledger/accounts/${bId}`)).flagged).toBe(false)
    } finally {
      await rm(backup, { recursive: true, force: true })
    }
  })
  it('a damaged ledger file stops the peer; repair-ledger keeps what is intact, and the peer takes its lost blocks back from the mesh', async () => {
    const head = (await b.get('/v1/ledger/account')).seq
    b.child.kill('SIGTERM')
    if (b.child.exitCode == null) await new Promise(resolve => b.child.once('exit', resolve))
    // One of beta's own sends goes bad on disk, with intact records after it.
    const file = join(bDir, 'ledger', 'ledger.log')
    const bytes = await readFile(file)
    const at = bytes.indexOf('after the backup"')
    expect(at).toBeGreaterThan(0)
    bytes[at] ^= 0x01
    await writeFile(file, bytes)
    await expect(startB()).rejects.toThrow(/damaged at byte \d+.*clawnet repair-ledger --data/)
    const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, 'bin/clawnet.js'), 'repair-ledger', '--data', bDir], { cwd: ROOT })
    expect(stdout).toMatch(/^damaged: \d+ bytes in 1 place/)
    expect(stdout).toMatch(/kept \d+ of \d+ intact records; left out \d+ block\(s\) that no longer link to what was kept \(\d+ of this agent's own\)/)
    expect((await readdir(join(bDir, 'ledger'))).some(f => f.startsWith('ledger.log.damaged-'))).toBe(true)
    b = await startB()
    await waitFor('beta to take its own lost blocks back', async () => (await b.get('/v1/ledger/account')).seq === head, 30_000)
    const res = await b.post('/v1/ledger/transfer', { to: aId, amount: 0.25, reason: 'after the repair' })
    expect(res.status).toBe(201)
    expect(res.body.block.seq).toBe(head + 1)
    await waitFor('alpha to take the new send', async () => (await a.get(`/v1/ledger/accounts/${bId}`)).seq === head + 1, 30_000)
    expect((await a.get('/v1/ledger/diagnostics')).flagged).toEqual([])
    // Never under a running agent, which would go on appending to the file being replaced.
    const repair = async (data: string): Promise<unknown> => await promisify(execFile)(process.execPath, [join(ROOT, 'bin/clawnet.js'), 'repair-ledger', '--data', data], { cwd: ROOT })
    await expect(repair(bDir)).rejects.toThrow(/in use by another clawnet agent/)
    const empty = await mkdtemp(join(tmpdir(), 'clawnet-no-agent-'))
    await expect(repair(empty)).rejects.toThrow(/holds no agent identity: give --data the directory the peer was started with/)
    await rm(empty, { recursive: true, force: true })
  })
})
