import { afterAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay } from '../helpers/relay.ts'
import { waitFor } from '../helpers/peer-process.ts'
import { startAgent } from '../../src/peer/start.ts'
import type { Agent } from '../../src/peer/agent.ts'
import { TOPICS } from '../../src/mesh/topics.ts'

/** What gossipsub knows of `a`, from `a` and from every other agent: why it might hear nothing. */
function gossipState (a: Agent, all: Agent[]): string {
  const others = all.filter(x => x !== a)
  const count = (f: (x: Agent) => boolean): number => others.filter(f).length
  // gossipsub's class has it; the service's interface does not.
  const meshOf = (x: Agent): string[] => (x.node.services.pubsub as unknown as { getMeshPeers: (topic: string) => string[] }).getMeshPeers(TOPICS.tavern)
  const pubsub = a.node.services.pubsub
  const snap = a.snapshot()
  return `${snap.self.name}: ${a.node.getConnections().length} links, relay ${snap.self.relay.connected ? 'connected' : 'not connected'}, ` +
    `gossip peers ${pubsub.getPeers().length}, tavern mesh ${meshOf(a).length}; ` +
    `of the others ${count(x => x.node.services.pubsub.getPeers().some(p => p.equals(a.node.peerId)))} know it, ` +
    `${count(x => x.node.services.pubsub.getSubscribers(TOPICS.tavern).some(p => p.equals(a.node.peerId)))} see it subscribed, ` +
    `${count(x => meshOf(x).includes(a.id))} mesh it; ` +
    `peers ${snap.peers.length}, rejected ${JSON.stringify(snap.diagnostics.rejected)}`
}

/**
 * Every agent here shares one IP (as peers behind one NAT do, and as every relayed peer does from
 * where others see it). gossipsub's default IP-colocation penalty graylisted newcomers once more
 * than ten peers shared an IP: the 14th agent heard nobody.
 */
describe('a mesh bigger than ten agents on one IP', () => {
  const agents: Agent[] = []
  const dirs: string[] = []
  let relay: Awaited<ReturnType<typeof startRelay>>

  afterAll(async () => {
    for (const a of agents) await a.stop().catch(() => {})
    await relay?.stop()
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('the sixteenth agent hears everyone, and everyone hears it', async () => {
    relay = await startRelay()
    for (let i = 0; i < 16; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'clawnet-scale-'))
      dirs.push(dir)
      agents.push(await startAgent({ relayAddrs: relay.multiaddrs, dataDir: dir, profile: { name: `agent-${i}` }, iceServers: [] }))
    }
    const last = agents.at(-1)!
    // Sixteen agents in one process on two cores open ~120 links at once: the newest hears its
    // first announces 8-9 s after it starts.
    await waitFor('the newest agent to see the fifteen others', () => last.snapshot().peers.length === 15, 30_000, 500).catch(err => {
      const known = new Set(last.snapshot().peers.map(p => p.id))
      const missing = agents.slice(0, -1).filter(a => !known.has(a.id)).map(a => `${gossipState(a, agents)} (links to the newest: ${a.node.getConnections(last.node.peerId).map(c => c.remoteAddr.toString().replace(/\/p2p\/\w+$/, '')).join(' ') || 'none'})`)
      throw new Error(`${err.message}: it sees ${known.size}; missing ${missing.join(', ')}; ${gossipState(last, agents)}`)
    })
    await waitFor('every agent to see the newest', () => agents.slice(0, -1).every(a => a.snapshot().peers.some(p => p.id === last.id)), 30_000, 500)
    await last.sendTavern('hello from the newest')
    await waitFor('every other agent to get its tavern message', () =>
      agents.slice(0, -1).every(a => a.snapshot().tavern.some(m => m.from === last.id)), 30_000, 500).catch(err => {
      const missing = agents.slice(0, -1).filter(a => !a.snapshot().tavern.some(m => m.from === last.id))
      throw new Error(`${err.message}: ${missing.map(a => gossipState(a, agents)).join('; ')}; the newest: ${gossipState(last, agents)}`)
    })
  })
})
