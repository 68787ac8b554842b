import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay, MODELS_DIR } from '../helpers/relay.ts'
import { waitFor } from '../helpers/peer-process.ts'
import { startAgent } from '../../src/peer/start.ts'
import { parseConfig } from '../../src/autonomy/persona.ts'
import type { Agent } from '../../src/peer/agent.ts'
import type { SwarmService } from '../../src/swarm/swarm-service.ts'
import type { AutonomyService } from '../../src/autonomy/service.ts'

const MODEL_FILE = join(MODELS_DIR, 'stories260K/stories260K.gguf')
const once = JSON.parse(readFileSync(join(MODELS_DIR, 'stories260K/reference.json'), 'utf8')).results[0]

/** Real agents on a real relay: an autonomous agent decides to host, and logs what it serves. */
describe('an autonomous agent chooses what to host', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  const agents: Agent[] = []
  const dirs: string[] = []

  const agent = async (name: string, autonomy?: unknown): Promise<Agent> => {
    const dir = await mkdtemp(join(tmpdir(), 'clawnet-autohost-'))
    dirs.push(dir)
    const a = await startAgent({ relayAddrs: relay.multiaddrs, dataDir: dir, profile: { name }, iceServers: [], autonomy: autonomy != null ? parseConfig(autonomy, name) : undefined })
    agents.push(a)
    return a
  }

  beforeAll(async () => { relay = await startRelay() })
  afterAll(async () => {
    for (const a of agents) await a.stop().catch(() => {})
    await relay?.stop()
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('hosts the blocks placement picks, serves a client, and logs the session; a zero compute share hosts nothing', async () => {
    const idle = await agent('idle', { host: MODEL_FILE, limits: { computeShare: 0 } })
    expect(idle.service<SwarmService>('swarm')!.view().hosting).toBeUndefined()

    const worker = await agent('worker', { host: MODEL_FILE, limits: { computeShare: 0.5 } })
    const autonomy = worker.service<AutonomyService>('autonomy')!
    const hosting = await waitFor('the worker to host', () => worker.service<SwarmService>('swarm')!.view().hosting, 30_000)
    // Alone in the mesh with a generous budget, the thinnest place is the whole model.
    expect([hosting.start, hosting.end]).toEqual([0, 4])
    expect(autonomy.status().activity.some(a => a.kind === 'hosting' && /blocks 0-4/.test(a.text))).toBe(true)

    const client = await agent('client')
    const swarm = client.service<SwarmService>('swarm')!
    await waitFor('the client to see the worker\'s blocks', () => swarm.view().models[0]?.missing.length === 0, 30_000)
    const r = await swarm.generate(hosting.model, once.prompt, { maxTokens: 16, temperature: 0, stopAtEos: false })
    expect(r.tokens).toEqual(once.generated_tokens.slice(0, 16))
    // The log records what was served as it is counted (possibly in several entries per session):
    // in all, the prompt plus every generated token but the last went through the worker's blocks.
    const servedTo = (): number => autonomy.log.list()
      .filter(e => e.type === 'session' && (e as any).kind === 'inference' && (e as any).client === client.id)
      .reduce((n, e) => n + (e as any).tokens, 0)
    await waitFor('the session in the worker\'s research log', () => servedTo() >= once.prompt_tokens_with_bos.length + 15, 10_000)
    expect(servedTo()).toBe(once.prompt_tokens_with_bos.length + 15)
  })
})
