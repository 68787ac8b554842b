import { describe, expect, it } from 'vitest'
import { streamPair } from '@libp2p/utils'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Connection } from '@libp2p/interface'
import { ShardServer } from '../../src/swarm/server.ts'
import { HopSession } from '../../src/swarm/hop.ts'
import { sessionFrames } from '../../src/swarm/session-wire.ts'
import { signReceipt } from '../../src/ledger/receipts.ts'
import { fakeRange, meteredHost } from '../helpers/fake-shard.ts'
import { DEFAULT_POLICY, type Policy } from '../../src/ledger/policy.ts'
import { RECEIPT_EVERY_TOKENS, UNSIGNED_TOKENS_ALLOWED, type ClientPayments } from '../../src/swarm/payments.ts'

const DIM = 4
const BLOCKS = 2
/** Settlement asked for from 20 signed unpaid tokens (× 2 blocks), serving stopped at 40. */
const POLICY: Policy = { ...DEFAULT_POLICY, work: { pricePerUnit: 1, settleEveryUnits: 20 * BLOCKS } }

async function setup () {
  const clientKey = await generateKeyPair('Ed25519')
  const serverKey = await generateKeyPair('Ed25519')
  const client = peerIdFromPrivateKey(clientKey)
  const server = peerIdFromPrivateKey(serverKey).toString()
  const host = meteredHost(server, POLICY)
  // A range whose blocks pass hidden states through: the payment rules are what is under test.
  const shard = new ShardServer(fakeRange(DIM, BLOCKS), { cacheBudgetBytes: 1 << 20, payments: host.payments }, 1)
  const [outbound, inbound] = await streamPair()
  const served = shard.handle(inbound, { remotePeer: client } as unknown as Connection)
  const conn = { newStream: async () => outbound } as unknown as Connection
  const payments: ClientPayments = {
    sign: async work => await signReceipt({ ...work, client: client.toString(), ts: Date.now() }, clientKey),
    settle: async () => undefined
  }
  return { conn, server, host, served, payments, outbound }
}

const step = (): Float32Array => new Float32Array(DIM).fill(0.5)

describe('paying for inference sessions', () => {
  it('a client that signs but never settles is asked to pay, then refused with payment-required, and the host closes the session', async () => {
    const { conn, server, host, served, payments } = await setup()
    const s = await HopSession.open(conn, { peer: server, start: 0, end: BLOCKS - 1 } as any, 'm'.repeat(64), 64, { dtype: 'f32', dim: DIM, timeoutMs: 5000, payments })
    expect(s.paySession).toMatch(/^[0-9a-f]{32}$/)
    const asked: boolean[] = []
    let refusal: any
    for (let i = 0; i < 60 && refusal == null; i++) {
      try {
        await s.step(step(), 1)
        asked.push(s.settleAsked)
      } catch (err) {
        refusal = err
      }
    }
    // Receipts come every RECEIPT_EVERY_TOKENS (16) tokens: the one for 32 tokens (64 units, at
    // least 40) makes the host ask with every reply from then on, the one for 48 (96, at least
    // twice 40) makes it refuse the next step.
    expect(RECEIPT_EVERY_TOKENS).toBe(16)
    expect(asked).toEqual([...Array(32).fill(false), ...Array(16).fill(true)])
    expect(refusal?.code).toBe('payment-required')
    expect(host.meters[0].unsettledUnits).toBe(48 * BLOCKS)
    // The host ended the session: nothing more is served on it.
    await served
    await expect(s.step(step(), 1)).rejects.toMatchObject({ code: 'transport' })
  })

  it('a client that pays when asked keeps being served', async () => {
    const { conn, server, host, served, payments } = await setup()
    const s = await HopSession.open(conn, { peer: server, start: 0, end: BLOCKS - 1 } as any, 'm'.repeat(64), 64, { dtype: 'f32', dim: DIM, timeoutMs: 5000, payments })
    for (let i = 0; i < 60; i++) {
      await s.step(step(), 1)
      // What the ledger does when the client's payment for the latest receipt arrives.
      if (s.settleAsked) host.meters[0].settled(host.meters[0].latest!.tokens * BLOCKS)
    }
    expect(s.position).toBe(60)
    expect(host.meters[0].unsettledUnits).toBeLessThan(2 * POLICY.work.settleEveryUnits)
    await s.close()
    await served
  })

  it('a client that stops sending receipts is refused once the host is UNSIGNED_TOKENS_ALLOWED tokens ahead', async () => {
    const { served, outbound } = await setup()
    const frames = sessionFrames(outbound)
    await frames.write({ type: 'open', model: 'm'.repeat(64), start: 0, end: BLOCKS - 1, maxLength: 64, dtype: 'f32' })
    const open = await frames.readJson()
    expect(open).toMatchObject({ ok: true })
    expect(typeof open.session).toBe('string')
    const half = UNSIGNED_TOKENS_ALLOWED / 2
    // Served without any receipt while the host is at most UNSIGNED_TOKENS_ALLOWED tokens ahead…
    for (const position of [0, half]) {
      await frames.writeWithBytes({ type: 'step', position, tokens: half }, new Uint8Array(new Float32Array(half * DIM).buffer))
      expect(await frames.readJson()).toMatchObject({ ok: true, tokens: half })
      await frames.readBytes()
    }
    // …and refused one token beyond.
    await frames.writeWithBytes({ type: 'step', position: 2 * half, tokens: 1 }, new Uint8Array(new Float32Array(DIM).buffer))
    expect(await frames.readJson()).toMatchObject({ ok: true, tokens: 1 })
    await frames.readBytes()
    await frames.writeWithBytes({ type: 'step', position: 2 * half + 1, tokens: 1 }, new Uint8Array(new Float32Array(DIM).buffer))
    expect(await frames.readJson()).toMatchObject({ ok: false, error: 'payment-required' })
    await served
  })

  it('a receipt signed by someone else, or for fewer blocks than served, ends the session', async () => {
    const { server, served, outbound } = await setup()
    const frames = sessionFrames(outbound)
    await frames.write({ type: 'open', model: 'm'.repeat(64), start: 0, end: BLOCKS - 1, maxLength: 64, dtype: 'f32' })
    const { session } = await frames.readJson()
    const other = await generateKeyPair('Ed25519')
    const forged = await signReceipt({ client: peerIdFromPrivateKey(other).toString(), server, model: 'm'.repeat(64), session, tokens: 100, layers: BLOCKS, ts: Date.now() }, other)
    await frames.write({ type: 'receipt', receipt: forged })
    await frames.writeWithBytes({ type: 'step', position: 0, tokens: 1 }, new Uint8Array(new Float32Array(DIM).buffer))
    expect(await frames.readJson()).toMatchObject({ ok: false, error: 'bad-request' })
    await served
  })
})
