import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { StreamCloseEvent, type Connection } from '@libp2p/interface'
import { openStream } from '../../src/mesh/frames.ts'

const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
const failing = (reason: unknown): Connection => ({ remotePeer: peer, newStream: async () => { throw reason } }) as unknown as Connection

describe('opening a stream', () => {
  it('turns the close event protocol negotiation rejects with into an Error that says what closed', async () => {
    // What multistream-select's write rejects with when the link closes while it waits to drain.
    const closed = new StreamCloseEvent(false, new Error('stream reset'))
    await expect(openStream(failing(closed), '/clawnet/task/1.0.0', AbortSignal.timeout(1000)))
      .rejects.toThrow(`the link to ${peer.toString()} closed while opening /clawnet/task/1.0.0: stream reset`)
    const plain = new Error('protocol selection failed')
    await expect(openStream(failing(plain), '/x', AbortSignal.timeout(1000))).rejects.toBe(plain)
  })
})
