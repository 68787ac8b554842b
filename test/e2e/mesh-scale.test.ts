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
    // first announce 8-12 s after it starts (before and after Node agents linked over TCP), more
    // on a loaded CI machine. What this guards against is an agent that never hears anyone.
    await waitFor('the newest agent to see the fifteen others', () => last.snapshot().peers.length === 15, 60_000, 500).catch(err => {
      throw new Error(`${err.message}: it sees ${last.snapshot().peers.length}, with ${(last as any).node.getConnections().length} connections`)
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
