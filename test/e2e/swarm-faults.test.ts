import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay, MODELS_DIR } from '../helpers/relay.ts'
import { waitFor } from '../helpers/peer-process.ts'
import { startAgent } from '../../src/peer/start.ts'
import type { Agent } from '../../src/peer/agent.ts'
import type { SwarmService } from '../../src/swarm/swarm-service.ts'
import { SHARD_TOPIC } from '../../src/swarm/messages.ts'
import { PREFILL_TOKENS } from '../../src/swarm/client.ts'

const MODEL_FILE = join(MODELS_DIR, 'stories260K/stories260K.gguf')
const reference = JSON.parse(readFileSync(join(MODELS_DIR, 'stories260K/reference.json'), 'utf8'))
const once = reference.results[0]

type Tamper = (forward: (h: Float32Array, n: number, c: any) => Promise<Float32Array>) => (h: Float32Array, n: number, c: any) => Promise<Float32Array>

/**
 * Real agents on a real relay, in this process so a test can make one of them misbehave: the
 * network, sessions and client are the production code; only a host's forward pass is tampered.
 */
describe('distributed inference with misbehaving peers', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  const agents: Agent[] = []
  const dirs: string[] = []
  let model: string

  const agent = async (name: string, swarm = {}): Promise<Agent> => {
    const dir = await mkdtemp(join(tmpdir(), 'clawnet-fault-'))
    dirs.push(dir)
    const a = await startAgent({ relayAddrs: relay.multiaddrs, dataDir: dir, profile: { name }, iceServers: [], swarm })
    agents.push(a)
    return a
  }
  const swarmOf = (a: Agent): SwarmService => a.service<SwarmService>('swarm')!
  const host = async (name: string, tamper?: Tamper, layers: [number, number] = [0, 4]): Promise<Agent> => {
    const a = await agent(name)
    const h = await swarmOf(a).host(MODEL_FILE, { layers })
    model = h.model
    if (tamper != null) {
      const range = (swarmOf(a) as any).server.hosted.range
      range.forward = tamper(range.forward.bind(range))
    }
    return a
  }
  const seesHosts = async (client: Agent, ids: string[]): Promise<void> => {
    await waitFor(`the client to see hosts ${ids.join(', ')}`, () => {
      const servers = swarmOf(client).view().models[0]?.servers.map(s => s.peer) ?? []
      return ids.every(id => servers.includes(id))
    }, 30_000, 200)
  }

  /**
   * Routing weighs measured RTTs and the hosts' own speed benchmarks, both noisy on a busy
   * machine; a test that needs the misbehaving host picked first makes the good one announce
   * itself as far slower than any noise (1 s per block), and waits until the client has heard it.
   */
  const slowDown = async (good: Agent, client: Agent): Promise<void> => {
    (swarmOf(good) as any).server.msPerTokenLayer = 1000
    await waitFor(`the client to hear that ${good.id} is slow`, async () => {
      await (swarmOf(good) as any).announce()
      return swarmOf(client).view().models[0]?.servers.some(s => s.peer === good.id && s.msPerTokenLayer >= 500)
    }, 30_000, 500)
  }

  /**
   * A misbehaving host beside a good one serving the same blocks, a client whose route starts on
   * the misbehaving one, and that client's greedy generation: the tokens must be the reference
   * whatever happened on the way.
   */
  const generateAround = async (name: string, tamper: Tamper, maxTokens: number, opts: { swarm?: object, stepTimeoutMs?: number } = {}) => {
    const bad = await host(name, tamper)
    const good = await host(`${name}-good`)
    const client = await agent(`${name}-client`, opts.swarm)
    await seesHosts(client, [bad.id, good.id])
    await slowDown(good, client)
    const r = await swarmOf(client).generate(model, once.prompt, { maxTokens, temperature: 0, stopAtEos: false, stepTimeoutMs: opts.stepTimeoutMs })
    expect(r.tokens, JSON.stringify({ spotChecks: r.spotChecks, skipped: r.spotChecksSkipped, routes: r.routes.map(x => x.reason) })).toEqual(once.generated_tokens.slice(0, maxTokens))
    return { bad, good, client, r }
  }

  beforeAll(async () => {
    relay = await startRelay()
  })

  // Each test starts with only its own agents in the mesh, even when the one before it failed.
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop().catch(() => {})
  })

  afterAll(async () => {
    await relay?.stop()
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })

  it('an agent generates through blocks it hosts itself (it cannot dial itself), unpaid', async () => {
    const solo = await host('solo')
    const r = await swarmOf(solo).generate(model, once.prompt, { maxTokens: 16, temperature: 0, stopAtEos: false })
    expect(r.tokens).toEqual(once.generated_tokens.slice(0, 16))
    expect(r.routes[0].hops).toEqual([expect.objectContaining({ peer: solo.id, start: 0, end: 4 })])
    expect(r.cost.paid).toBe(0)
  })

  it('a spot check catches a host that perturbs its output; evidence spreads and the output stays right', async () => {
    // The route starts on the liar, so the check has something to catch.
    const { bad: liar, good: honest, client, r } = await generateAround('liar', forward => async (h, n, c) => {
      const out = await forward(h, n, c)
      return out.map((v, i) => v + (i % 7 === 0 ? 0.5 : 0))
    }, 64, { swarm: { spotCheckRate: 1 } })
    // The first check caught it; once the liar is banned nobody else serves its range to check.
    expect(r.spotChecks).toBe(1)
    expect(r.routes[0].hops[0].peer).toBe(liar.id)
    expect(r.routes.at(-1)!.hops[0].peer).toBe(honest.id)
    expect(r.routes.at(-1)!.reason).toMatch(/failed a spot check/)
    const evidence = swarmOf(client).view().evidence
    expect(evidence.some(e => e.accused === liar.id && e.reference === honest.id && e.maxDiff > e.tolerance)).toBe(true)
    // The evidence also counts in the client's reputation (EigenTrust), which routing weighs.
    const trust = await waitFor('the liar to lose trust', () => { const t = swarmOf(client).view().trust[liar.id]; return t < 1 ? t : undefined }, 10_000)
    expect(trust).toBeLessThan(swarmOf(client).view().trust[honest.id] ?? 1)
    await waitFor('the evidence to reach the honest host by gossip', () =>
      swarmOf(honest).view().evidence.some(e => e.accused === liar.id && e.by === client.id), 15_000)
    expect(swarmOf(honest).view().standing[liar.id]).toBeLessThan(1)
  })

  it('routes around a host sending wrongly shaped frames', async () => {
    const { bad, r } = await generateAround('short-frames', forward => async (h, n, c) => (await forward(h, n, c)).subarray(1), 16)
    expect(r.routes[0].hops[0].peer).toBe(bad.id)
    expect(r.routes.at(-1)!.reason).toMatch(/bad tensor|expected/)
  })

  it('routes around a stalled host after the step deadline', async () => {
    const { r } = await generateAround('stalled', () => async () => await new Promise<Float32Array>(() => {}), 8, { stepTimeoutMs: 3000 })
    expect(r.routes.at(-1)!.reason).toMatch(/did not answer within 3000 ms/)
  })

  it('a host that goes silent mid-decode is routed around at its paced deadline, not the 30 s step timeout', async () => {
    let decoded = 0
    const { bad: silent, good, r } = await generateAround('silent', forward => async (h, n, c) => {
      if (n === 1 && ++decoded > 12) return await new Promise<Float32Array>(() => {})
      return await forward(h, n, c)
    }, 24)
    expect(r.routes[0].hops[0].peer).toBe(silent.id)
    expect(r.routes.at(-1)!.hops[0].peer).toBe(good.id)
    expect(r.routes.at(-1)!.reason).toMatch(/did not answer within 5000 ms/)
  })

  it('routes around an agent that claims a range it does not hold', async () => {
    const good = await host('good-3')
    const client = await agent('client-claims')
    const claimer = await agent('claimer')
    // Announce blocks 0-4 without hosting anything.
    const announce = (): Promise<unknown> => (claimer as any).context().publish(SHARD_TOPIC, 'shard.announce', {
      model, name: 'stories260K.gguf', nLayers: 5, start: 0, end: 4, msPerTokenLayer: 0.001, freeCacheTokens: 100000, load: 0, rtts: {}, ttl: 60
    })
    await waitFor('the false claim to reach the client', async () => {
      await announce()
      return swarmOf(client).view().models[0]?.servers.some(s => s.peer === claimer.id)
    }, 30_000, 1000).catch(err => {
      const snap = client.snapshot()
      throw new Error(`${err.message}; relay link ${JSON.stringify(snap.self.relay)}, conns ${client.node.getConnections().length}; client knows peers ${JSON.stringify(snap.peers.map(p => [p.name, p.transport]))}, rejected ${JSON.stringify(snap.diagnostics.rejected)}, recent ${JSON.stringify(snap.diagnostics.recent.slice(-3))}; relay rejected ${JSON.stringify(relay.inbox.counts)}; relay announce subscribers ${(relay.node.services as any).pubsub.getSubscribers("clawnet/1/announce").length}, relay peers ${relay.node.getPeers().length}, relay has outbound stream to client ${(relay.node.services as any).pubsub.streamsOutbound.has(client.id)}, inbound ${(relay.node.services as any).pubsub.streamsInbound.has(client.id)}, client outbound to relay ${(client.node.services as any).pubsub.streamsOutbound.has(relay.peerId)}; client sees subscribers ${client.node.services.pubsub.getSubscribers("clawnet/1/announce").length}, client pubsub peers ${client.node.services.pubsub.getPeers().length}`)
    })
    await seesHosts(client, [good.id])
    await slowDown(good, client)
    const r = await swarmOf(client).generate(model, once.prompt, { maxTokens: 8, temperature: 0, stopAtEos: false })
    expect(r.tokens).toEqual(once.generated_tokens.slice(0, 8))
    // The false claim never became a working hop: setup failed on it and routed to the real host.
    expect(r.routes.map(x => x.hops[0].peer)).toEqual([good.id])
    expect(r.routes[0].reason).toMatch(/^initial, after: /)
    expect(r.routes[0].reason).toContain(claimer.id)
  })

  it('a long prompt can travel in q8: its prefill takes a quarter of the bytes, and here the greedy tokens stay the same', async () => {
    const head = await host('q8-head', undefined, [0, 1])
    const tail = await host('q8-tail', undefined, [2, 4])
    const client = await agent('q8-client')
    await seesHosts(client, [head.id, tail.id])
    const prompt = 'Once upon a time, there was a little girl named Lily. She loved to play outside with her big red ball and her dog.'
    const opts = { maxTokens: 32, temperature: 0, stopAtEos: false }
    const f32 = await swarmOf(client).generate(model, prompt, opts)
    const q8 = await swarmOf(client).generate(model, prompt, { ...opts, prefillDtype: 'q8' as const })
    const n = f32.promptTokens.length
    expect(n).toBeGreaterThanOrEqual(PREFILL_TOKENS)
    // Two hops, each sent and answering n tokens of 64 values: f32 4 bytes a value; q8 one, plus a 4-byte scale per token.
    const saved = 2 * n * (64 * 4 - (64 + 4))
    expect(f32.wire.bytesSent - q8.wire.bytesSent).toBe(saved)
    expect(f32.wire.bytesReceived - q8.wire.bytesReceived).toBe(saved)
    expect(q8.tokens).toEqual(f32.tokens)
  })
})
