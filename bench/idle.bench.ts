// What an agent costs while it does nothing: CPU per idle `clawnet peer` in meshes of 3 and 10
// (announces, gossip heartbeats, pings, ledger anti-entropy), and the relay's. Every agent
// receives and verifies what every other sends, so the per-agent figure grows with the mesh;
// a hosting tab left open pays it out of the same cores its compute uses.
import { readFileSync } from 'node:fs'
import { startRelay } from '../test/helpers/relay.ts'
import { startPeerProcess, type PeerProcess } from '../test/helpers/peer-process.ts'
import { median } from '../src/stats.ts'
import { ownCpuMs } from './measure.ts'

const MESHES = [3, 10]
/** Long enough for the start-up traffic (greetings, every pair trading chains) to be over. */
const SETTLE_MS = 60_000
const WINDOW_MS = 20_000

/** CPU milliseconds a process has used (Linux /proc; USER_HZ is 100 there). */
function cpuMs (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

const percent = (ms: number): number => Math.round((ms / WINDOW_MS) * 1000) / 10

async function idleMesh (n: number): Promise<Record<string, unknown>> {
  const relay = await startRelay()
  const peers: PeerProcess[] = []
  try {
    for (let i = 0; i < n; i++) peers.push(await startPeerProcess(relay.url, `idle-${i}`))
    await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
    const before = peers.map(p => cpuMs(p.child.pid!))
    // The relay runs in this process, which otherwise only waits.
    const relayBefore = ownCpuMs()
    await new Promise(resolve => setTimeout(resolve, WINDOW_MS))
    const perPeer = peers.map((p, i) => percent(cpuMs(p.child.pid!) - before[i]))
    const figures = { agents: n, per_agent_cpu_percent_of_a_core: { median: median(perPeer), all: perPeer }, relay_cpu_percent_of_a_core: percent(ownCpuMs() - relayBefore) }
    console.error(`${n} idle agents: ${figures.per_agent_cpu_percent_of_a_core.median}% of a core each (median), relay ${figures.relay_cpu_percent_of_a_core}%`)
    return figures
  } finally {
    for (const p of peers) await p.stop()
    await relay.stop()
  }
}

export async function run (): Promise<Record<string, unknown>> {
  if (process.platform !== 'linux') throw new Error('the idle bench reads /proc: run it on Linux')
  const meshes: Record<string, unknown> = {}
  for (const n of MESHES) meshes[`${n}_agents`] = await idleMesh(n)
  return { settle_ms: SETTLE_MS, window_ms: WINDOW_MS, meshes, note: 'Node peers without models, on one machine with 2 cores; each % is of one core.' }
}
