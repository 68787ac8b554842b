import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createAgentNode, type AgentNode } from '../../src/mesh/node.ts'
import { GossipRepair, outboundStreams } from '../../src/mesh/gossip-repair.ts'
import { waitFor } from '../helpers/peer-process.ts'

const TOPIC = 'repair-test'
const nodes: AgentNode[] = []
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop()
})

async function agentNode (): Promise<AgentNode> {
  const n = await createAgentNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  nodes.push(n)
  n.services.pubsub.subscribe(TOPIC)
  return n
}

/** Whether `to` hears what `from` publishes now (gossipsub sends to every subscriber it has a stream to). */
async function hears (from: AgentNode, to: AgentNode, text: string): Promise<boolean> {
  const heard = new Promise<boolean>(resolve => {
    const t = setTimeout(() => { resolve(false) }, 1500)
    to.services.pubsub.addEventListener('message', evt => {
      if (new TextDecoder().decode(evt.detail.data) === text) { clearTimeout(t); resolve(true) }
    })
  })
  await from.services.pubsub.publish(TOPIC, new TextEncoder().encode(text))
  return await heard
}

const streamsOf = (n: AgentNode): Map<string, unknown> => {
  const streams = outboundStreams(n.services.pubsub)
  if (streams == null) throw new Error('gossipsub no longer has streamsOutbound: GossipRepair cannot see what it repairs')
  return streams
}

describe('gossip repair', () => {
  it('reopens the stream gossipsub lost to a neighbour it still counts as connected', async () => {
    const [a, b] = [await agentNode(), await agentNode()]
    const tcp = b.getMultiaddrs().find(m => m.toString().includes('/tcp/'))!
    await a.dial(tcp)
    const bId = b.peerId.toString()
    await waitFor('gossip between a and b', () => a.services.pubsub.getSubscribers(TOPIC).some(p => p.equals(b.peerId)) && streamsOf(a).has(bId))
    expect(await hears(a, b, 'before')).toBe(true)

    // What a timed-out protocol negotiation leaves: the link and the neighbour, no stream to it.
    const lost = streamsOf(a).get(bId) as { rawStream: { abort: (err: Error) => void } }
    lost.rawStream.abort(new Error('negotiation timed out'))
    await waitFor('the stream to close', () => !streamsOf(a).has(bId))
    expect(a.getConnections(b.peerId).some(c => c.status === 'open')).toBe(true)
    // gossipsub does not reopen it by itself.
    expect(await hears(a, b, 'stranded')).toBe(false)
    expect(streamsOf(a).has(bId)).toBe(false)

    const repair = new GossipRepair(a)
    const t0 = Date.now()
    repair.check(t0)
    repair.check(t0 + 5000)
    expect(repair.attempts).toBe(0)
    repair.check(t0 + 10_000)
    expect(repair.attempts).toBe(1)
    await waitFor('the stream to reopen', () => streamsOf(a).has(bId))
    expect(await hears(a, b, 'after')).toBe(true)
    repair.check(t0 + 15_000)
    expect(repair.repaired).toBe(1)
  }, 30_000)

  it('tries a neighbour that keeps refusing less and less often, and forgets one that left', () => {
    const peer = { toString: () => 'P', equals: () => false } as any
    let identifies = 0
    const peers = [peer]
    const node = {
      getConnections: () => [{ status: 'open', remoteAddr: { toString: () => '/ip4/127.0.0.1/tcp/1/p2p/P' } }] as any,
      services: {
        pubsub: { getPeers: () => peers, streamsOutbound: new Map() } as any,
        identify: { identify: async () => { identifies++ } }
      }
    }
    const repair = new GossipRepair(node)
    const tries: number[] = []
    for (let s = 0; s <= 200; s += 5) {
      const before = identifies
      repair.check(s * 1000)
      if (identifies > before) tries.push(s)
    }
    // Grace of 10 s, then waits of 20, 40, 80 and at most 120 s.
    expect(tries).toEqual([10, 30, 70, 150])
    peers.length = 0
    repair.check(201_000)
    expect(repair.repaired).toBe(0)
    peers.push(peer)
    repair.check(202_000)
    repair.check(205_000)
    expect(identifies).toBe(4)
  })
})
