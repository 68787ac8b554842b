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
import type { ClientPayments } from '../../src/swarm/payments.ts'

const DIM = 4
const BLOCKS = 2
/** Settlement asked for every 3 tokens (× 2 blocks), serving stopped at 6 unpaid tokens. */
const POLICY: Policy = { ...DEFAULT_POLICY, work: { pricePerUnit: 1, settleEveryUnits: 3 * BLOCKS } }

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
    for (let i = 0; i < 20 && refusal == null; i++) {
      try {
        await s.step(step(), 1)
        asked.push(s.settleAsked)
      } catch (err) {
        refusal = err
      }
    }
    // A receipt travels with the next step, so the host's count trails by one token: it asks once
    // 3 tokens (× 2 blocks) are signed and unpaid, and refuses the step after 6.
    expect(asked).toEqual([false, false, false, true, true, true])
    expect(refusal?.code).toBe('payment-required')
    expect(host.meters[0].unsettledUnits).toBe(2 * POLICY.work.settleEveryUnits)
    // The host ended the session: nothing more is served on it.
    await served
    await expect(s.step(step(), 1)).rejects.toMatchObject({ code: 'transport' })
  })

  it('a client that pays when asked keeps being served', async () => {
    const { conn, server, host, served, payments } = await setup()
    const s = await HopSession.open(conn, { peer: server, start: 0, end: BLOCKS - 1 } as any, 'm'.repeat(64), 64, { dtype: 'f32', dim: DIM, timeoutMs: 5000, payments })
    for (let i = 0; i < 20; i++) {
      await s.step(step(), 1)
      // What the ledger does when the client's payment for the latest receipt arrives.
      if (s.settleAsked) host.meters[0].settled(host.meters[0].latest!.tokens * BLOCKS)
    }
    expect(s.position).toBe(20)
    await s.close()
    await served
  })

  it('a client that stops sending receipts is refused at its next step', async () => {
    const { served, outbound } = await setup()
    const frames = sessionFrames(outbound)
    await frames.write({ type: 'open', model: 'm'.repeat(64), start: 0, end: BLOCKS - 1, maxLength: 64, dtype: 'f32' })
    const open = await frames.readJson()
    expect(open).toMatchObject({ ok: true })
    expect(typeof open.session).toBe('string')
    await frames.writeWithBytes({ type: 'step', position: 0, tokens: 2 }, new Uint8Array(new Float32Array(2 * DIM).buffer))
    expect(await frames.readJson()).toMatchObject({ ok: true, tokens: 2 })
    await frames.readBytes()
    // The second step comes without a receipt for the first one's 2 tokens × 2 blocks.
    await frames.writeWithBytes({ type: 'step', position: 2, tokens: 1 }, new Uint8Array(new Float32Array(DIM).buffer))
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
