import { describe, expect, it } from 'vitest'
import { streamPair } from '@libp2p/utils'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection } from '@libp2p/interface'
import { ShardServer } from '../../src/swarm/server.ts'
import { HopSession } from '../../src/swarm/hop.ts'
import { sessionFrames } from '../../src/swarm/session-wire.ts'
import { signReceipt } from '../../src/ledger/receipts.ts'
import { DEFAULT_POLICY } from '../../src/ledger/policy.ts'
import { UNSIGNED_TOKENS_ALLOWED, type ClientPayments, type HostPayments } from '../../src/swarm/payments.ts'
import { FAKE_MODEL, fakeRange, meteredHost } from '../helpers/fake-shard.ts'

const DIM = 4
const CLIENT = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))

/** A connection whose streams are served, in memory, by `serve`. */
function connTo (serve: (stream: any) => void): Connection {
  return {
    newStream: async () => {
      const [ours, theirs] = await streamPair()
      serve(theirs)
      return ours
    }
  } as unknown as Connection
}

/**
 * Two hosts of a chain: A adds 1 to every value, B doubles it (so the order shows). A pushes to
 * B over an in-memory push stream; the client has a session with each.
 */
async function chain (opts: { bPayments?: HostPayments, payments?: ClientPayments, idleMs?: number } = {}) {
  const b = new ShardServer(fakeRange(DIM, 2, x => 2 * x, 2), { cacheBudgetBytes: 1 << 20, payments: opts.bPayments, idleMs: opts.idleMs }, 1)
  const a = new ShardServer(fakeRange(DIM, 2, x => x + 1), { cacheBudgetBytes: 1 << 20, idleMs: opts.idleMs, link: async (_peer, use) => await use(connTo(s => { void b.handlePush(s) })) }, 1)
  const open = async (server: ShardServer, peer: string, start: number): Promise<HopSession> =>
    await HopSession.open(connTo(s => { void server.handle(s, { remotePeer: CLIENT }) }), { peer, start, end: start + 1 } as any, FAKE_MODEL, 64, { dtype: 'f32', dim: DIM, timeoutMs: 3000, payments: opts.payments })
  const hopA = await open(a, 'host-a', 0)
  const hopB = await open(b, 'host-b', 2)
  return { a, b, hopA, hopB }
}

describe('hosts pushing decode steps along the chain', () => {
  it('the first host pushes its output to the second, which answers the client as if the client had sent it', async () => {
    const { b, hopA, hopB } = await chain()
    expect(hopB.pushId).toMatch(/^[0-9a-f]{32}$/)
    expect(await hopA.link(hopB)).toBe(true)
    for (let t = 0; t < 3; t++) {
      const x = new Float32Array(DIM).fill(t)
      expect(Array.from(await hopA.step(x, 1, 'f32', true))).toEqual(Array(DIM).fill(t + 1))
      expect(hopA.pushed).toBe(true)
      expect(Array.from(await hopB.receive(1))).toEqual(Array(DIM).fill(2 * (t + 1)))
    }
    expect(hopB.position).toBe(3)
    expect(b.stats().pushesDropped).toBe(0)
    // Without `forward` the host keeps its output to itself (prompts go hop by hop).
    await hopA.step(new Float32Array(DIM), 1)
    expect(hopA.pushed).toBe(false)
  })

  it('a push naming no session here, or at a position the session already holds, is dropped and counted', async () => {
    const { b, hopA, hopB } = await chain()
    const stray = sessionFrames(await connTo(s => { void b.handlePush(s) }).newStream('x'))
    await stray.write({ push: 'f'.repeat(32) })
    await expect(stray.readJson(AbortSignal.timeout(2000))).rejects.toThrow()
    expect(b.stats().pushesDropped).toBe(1)
    // The client went around a slow first hop and sent position 0 itself; the late push is not needed.
    expect(await hopA.link(hopB)).toBe(true)
    await hopB.step(new Float32Array(DIM).fill(1), 1)
    await hopA.step(new Float32Array(DIM).fill(1), 1, 'f32', true)
    await expect.poll(() => b.stats().pushesDropped).toBe(2)
    // And the session goes on.
    expect(Array.from(await hopB.step(new Float32Array(DIM).fill(3), 1))).toEqual(Array(DIM).fill(6))
  })

  it('a session fed only by pushes is not idle, though its client sends it nothing; one fed by nobody is', async () => {
    const idleMs = 300
    const { b, hopA, hopB } = await chain({ idleMs })
    expect(await hopA.link(hopB)).toBe(true)
    // Decode for three idle periods: B hears from its client only through A's pushes.
    const until = Date.now() + 3 * idleMs
    let t = 0
    for (; Date.now() < until; t++) {
      await hopA.step(new Float32Array(DIM).fill(t), 1, 'f32', true)
      expect(Array.from(await hopB.receive(1))).toEqual(Array(DIM).fill(2 * (t + 1)))
      await new Promise(resolve => setTimeout(resolve, idleMs / 5))
    }
    expect(b.stats().sessions).toBe(1)
    // Nothing at all for longer than idleMs: both sessions end and free their caches.
    await new Promise(resolve => setTimeout(resolve, 2 * idleMs))
    expect(b.stats().sessions).toBe(0)
    await expect(hopB.step(new Float32Array(DIM), 1)).rejects.toThrow()
    expect(t).toBeGreaterThan(5)
  })

  it('a host that cannot reach the next one says so, and the client carries the state itself', async () => {
    const b = new ShardServer(fakeRange(DIM, 2, x => 2 * x, 2), { cacheBudgetBytes: 1 << 20 }, 1)
    const a = new ShardServer(fakeRange(DIM, 2, x => x + 1), { cacheBudgetBytes: 1 << 20, link: async () => { throw new Error('no route') } }, 1)
    const hopA = await HopSession.open(connTo(s => { void a.handle(s, { remotePeer: CLIENT }) }), { peer: 'a', start: 0, end: 1 } as any, FAKE_MODEL, 64, { dtype: 'f32', dim: DIM, timeoutMs: 3000 })
    const hopB = await HopSession.open(connTo(s => { void b.handle(s, { remotePeer: CLIENT }) }), { peer: 'b', start: 2, end: 3 } as any, FAKE_MODEL, 64, { dtype: 'f32', dim: DIM, timeoutMs: 3000 })
    expect(await hopA.link(hopB)).toBe(false)
    // The session survives the failed link.
    expect(Array.from(await hopA.step(new Float32Array(DIM), 1, 'f32', true))).toEqual(Array(DIM).fill(1))
    expect(hopA.pushed).toBe(false)
  })

  it('a pushed step that overtakes the client\'s receipt waits for it instead of refusing', async () => {
    const key = await generateKeyPair('Ed25519')
    const client = peerIdFromPrivateKey(key)
    const host = meteredHost('host-b', { ...DEFAULT_POLICY, work: { pricePerUnit: 1, settleEveryUnits: 1000 } })
    // Slow signatures: the next push reaches B well before the receipt for the step before.
    const payments: ClientPayments = {
      sign: async work => { await new Promise(resolve => setTimeout(resolve, 150)); return await signReceipt({ ...work, client: client.toString(), ts: Date.now() }, key) },
      settle: async () => undefined
    }
    const b = new ShardServer(fakeRange(DIM, 2, x => 2 * x, 2), { cacheBudgetBytes: 1 << 20, payments: host.payments }, 1)
    const a = new ShardServer(fakeRange(DIM, 2, x => x + 1), { cacheBudgetBytes: 1 << 20, link: async (_peer, use) => await use(connTo(s => { void b.handlePush(s) })) }, 1)
    const hopA = await HopSession.open(connTo(s => { void a.handle(s, { remotePeer: client }) }), { peer: 'a', start: 0, end: 1 } as any, FAKE_MODEL, 64, { dtype: 'f32', dim: DIM, timeoutMs: 3000 })
    const hopB = await HopSession.open(connTo(s => { void b.handle(s, { remotePeer: client }) }), { peer: 'host-b', start: 2, end: 3 } as any, FAKE_MODEL, 64, { dtype: 'f32', dim: DIM, timeoutMs: 3000, payments })
    expect(hopB.paySession).toBeDefined()
    expect(await hopA.link(hopB)).toBe(true)
    // A prompt beyond what B serves unsigned: the step pushed after it must wait for its receipt.
    const prompt = UNSIGNED_TOKENS_ALLOWED + 8
    await hopA.step(new Float32Array(prompt * DIM).fill(1), prompt, 'f32', true)
    expect(Array.from(await hopB.receive(prompt))).toEqual(Array(prompt * DIM).fill(4))
    for (let t = 0; t < 3; t++) {
      await hopA.step(new Float32Array(DIM).fill(t), 1, 'f32', true)
      expect(Array.from(await hopB.receive(1))).toEqual(Array(DIM).fill(2 * (t + 1)))
    }
    expect(host.meters[0].latest?.tokens).toBe(prompt)
    // Closing signs for the rest.
    await hopB.close()
    await expect.poll(() => host.meters[0].latest?.tokens).toBe(prompt + 3)
  })
})
