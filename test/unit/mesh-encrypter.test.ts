import { describe, expect, it } from 'vitest'
import { noise } from '@libp2p/noise'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { defaultLogger } from '@libp2p/logger'
import { multiaddrConnectionPair } from '@libp2p/utils'
import type { ConnectionEncrypter, MultiaddrConnection } from '@libp2p/interface'
import { connectionEncrypter } from '../../src/mesh/encrypter.ts'

/** A real Noise handshake over an in-memory connection pair; counts the buffers each transport write gets. */
async function secured (make: () => ReturnType<typeof noise>) {
  const [out, inb] = multiaddrConnectionPair()
  const writes: number[][] = []
  for (const conn of [out, inb] as MultiaddrConnection[]) {
    const sendData = (conn as any).sendData.bind(conn)
    ;(conn as any).sendData = (list: any) => { writes.push(list.bufs.map((b: Uint8Array) => b.byteLength)); return sendData(list) }
  }
  const enc = async (): Promise<ConnectionEncrypter> => make()({ privateKey: await generateKeyPair('Ed25519'), logger: defaultLogger() } as any)
  const [a, b] = await Promise.all([enc(), enc()])
  const [x, y] = await Promise.all([a.secureOutbound(out, { skipStreamMuxerNegotiation: true }), b.secureInbound(inb, { skipStreamMuxerNegotiation: true })])
  writes.length = 0
  return { x: x.connection, y: y.connection, writes }
}

async function exchange (make: () => ReturnType<typeof noise>) {
  const { x, y, writes } = await secured(make)
  const got: number[] = []
  y.addEventListener('message', evt => { got.push(...evt.data.subarray()) })
  const sent: number[] = []
  for (const size of [10, 6144, 70_000]) {
    const msg = Uint8Array.from({ length: size }, (_, i) => (i * 7 + size) & 0xff)
    sent.push(...msg)
    x.send(msg)
  }
  await new Promise(resolve => setTimeout(resolve, 50))
  return { writes, intact: got.length === sent.length && got.every((v, i) => v === sent[i]) }
}

describe('the connection encrypter', () => {
  it('hands the transport what each send encrypts as one buffer, and the bytes arrive intact', async () => {
    const { writes, intact } = await exchange(connectionEncrypter)
    expect(intact).toBe(true)
    // One write per send, even for 70 000 bytes, which take two Noise messages (at most 65 535 bytes each).
    expect(writes.length).toBe(3)
    expect(writes.every(w => w.length === 1)).toBe(true)
  })

  it('plain Noise hands it each message in pieces (what this guards against)', async () => {
    const { writes, intact } = await exchange(noise)
    expect(intact).toBe(true)
    expect(writes.some(w => w.length > 1)).toBe(true)
  })
})
