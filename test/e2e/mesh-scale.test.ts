import { afterAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay } from '../helpers/relay.ts'
import { waitFor } from '../helpers/peer-process.ts'
import { startAgent } from '../../src/peer/start.ts'
import type { Agent } from '../../src/peer/agent.ts'

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
      const missing = agents.slice(0, -1).filter(a => !known.has(a.id)).map(a => `${a.snapshot().self.name} (links to the newest: ${(a as any).node.getConnections().filter((c: any) => c.remotePeer.toString() === last.id).map((c: any) => c.remoteAddr.toString().replace(/\/p2p\/\w+$/, '')).join(' ') || 'none'})`)
      throw new Error(`${err.message}: it sees ${known.size}, with ${(last as any).node.getConnections().length} connections; missing ${missing.join(', ')}; rejected ${JSON.stringify(last.snapshot().diagnostics.rejected)}`)
    })
    await waitFor('every agent to see the newest', () => agents.slice(0, -1).every(a => a.snapshot().peers.some(p => p.id === last.id)), 30_000, 500)
    await last.sendTavern('hello from the newest')
    await waitFor('every other agent to get its tavern message', () =>
      agents.slice(0, -1).every(a => a.snapshot().tavern.some(m => m.from === last.id)), 30_000, 500).catch(err => {
      const missing = agents.slice(0, -1).filter(a => !a.snapshot().tavern.some(m => m.from === last.id))
      throw new Error(`${err.message}: ${missing.map(a => `${a.snapshot().self.name} (peers ${a.snapshot().peers.length}, rejected ${JSON.stringify(a.snapshot().diagnostics.rejected)})`).join(', ')}`)
    })
  })
})
