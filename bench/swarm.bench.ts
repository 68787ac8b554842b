// Distributed inference on loopback: decode tokens/s through a chain of 1, 2 and 4 host
// processes (each hosting an equal share of the blocks), side by side with one engine running
// the whole model in-process (and with its blocks split into the same ranges, still in-process,
// to tell the split's own cost from the network's); the ratio, the time each extra hop adds per
// token, and the throughput of the pipeline when several generations run through it at once.
// The three chains run at the same time, each in a mesh of its own, and take their turns round
// by round, so ratios between them compare generations seconds apart rather than minutes. Each
// chain is driven by two clients in turn: one whose hosts push decode steps to each other (the
// default) and one that carries every hidden state itself (--no-push). Three models: a small one,
// where messaging dominates a token, and two where compute does (~0.4B and ~1.1B parameters), as
// for the models a mesh is for; the two tell which costs of a hop are fixed and which grow with
// the model.
// Last, what idling between turns costs one host's compute by itself (no network), in this process.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LlamaConfig } from '../src/model/config.ts'
import { GgmlType } from '../src/model/ggml-types.ts'
import { llamaConfig } from '../test/helpers/llama-config.ts'
import { randomLlamaGguf, tensorShapes } from '../src/model/random-model.ts'
import { openFileSource } from '../src/model/source.ts'
import { readLlama2cTokenizer } from '../src/model/llama2c.ts'
import { openModel } from '../src/model/open-model.ts'
import { loadRuntime } from '../src/engine/ort.ts'
import { LocalPipeline } from '../src/engine/pipeline.ts'
import { BlockRange } from '../src/engine/stages.ts'
import { startRelay, MODELS_DIR } from '../test/helpers/relay.ts'
import { startPeerProcess, waitFor, type PeerProcess } from '../test/helpers/peer-process.ts'
import { exactQuantile, median, medianInterval } from '../src/stats.ts'
import { ratio } from './measure.ts'
import type { HopTiming } from '../src/swarm/client.ts'

interface BenchModel {
  label: string
  config: LlamaConfig
  type?: GgmlType
  decode: number
  runs: number
}

const BASE = llamaConfig({ dim: 512, hiddenDim: 1536, nLayers: 8, nHeads: 8, nKvHeads: 4, headDim: 64, vocabSize: 512, contextLength: 512, tiedEmbeddings: false })
const MODELS: BenchModel[] = [
  // ~27M parameters, f32: a hop's messaging is of the order of a token's compute.
  { label: 'small', config: BASE, decode: 48, runs: 7 },
  // ~400M parameters, Q8_0 (what people download): a token costs ~30 ms of compute on one thread here.
  { label: 'large', config: { ...BASE, dim: 1536, hiddenDim: 4096, nLayers: 16, nHeads: 12, nKvHeads: 4, headDim: 128 }, type: GgmlType.Q8_0, decode: 16, runs: 7 },
  // ~1.1B parameters, Q8_0: a token costs ~100 ms here, still small for the models a mesh is for.
  { label: 'xl', config: { ...BASE, dim: 2048, hiddenDim: 5632, nLayers: 24, nHeads: 16, nKvHeads: 4, headDim: 128 }, type: GgmlType.Q8_0, decode: 16, runs: 7 }
]
const CONCURRENT = 4
/** Hosts per chain. */
const CHAINS = [1, 2, 4]
/** Pause before each measured generation (see `settled`). */
const SETTLE_MS = 2000
const PROMPT = 'Once upon a time there was a mesh of agents'
/** Every engine gets one thread: four hosts share this machine's two cores, as does the single engine's baseline. */
const THREADS = 1

const ms = (x: number): number => Math.round(x * 100) / 100
const paramsMillions = (c: LlamaConfig): number => Math.round([...tensorShapes(c).values()].reduce((n, dims) => n + dims.reduce((a, b) => a * b, 1), 0) / 1e6)

interface SingleEngine { run: () => Promise<number>, close: () => Promise<void> }

/**
 * The whole model in this process, one engine: each `run` is one generation's decode tokens/s.
 * With `parts` > 1 its blocks are split into that many ranges (sessions) as a chain's hosts split
 * them, so what the split itself costs is told apart from what the network adds.
 */
async function singleEngine (path: string, m: BenchModel, parts = 1): Promise<SingleEngine> {
  const { model, tokenizer } = await openModel(path)
  const per = m.config.nLayers / parts
  const ranges = Array.from({ length: parts }, (_, i): [number, number] => [i * per, (i + 1) * per - 1])
  const pipeline = await LocalPipeline.load(model, await loadRuntime({ threads: THREADS }), ranges)
  const prompt = tokenizer.encode(PROMPT)
  return {
    run: async () => {
      pipeline.reset()
      return (await pipeline.generate(prompt, { maxTokens: m.decode })).timings.decode_tokens_per_s
    },
    close: async () => {
      await pipeline.release()
      await model.source.close?.()
    }
  }
}

/** Decode steps per case and round of `idleCost`, and the rounds. */
const IDLE_STEPS = 24
const IDLE_ROUNDS = 6

/**
 * What waiting costs a host: one decode step of a quarter of the blocks (one host's share in the
 * 4-host chain), run back to back, and after the host sat idle for as long as the other three
 * quarters take (as a chain host does between its turns), in this process, alternating round by
 * round. The ratio is the compute a chain host loses to cold caches, whatever the network does.
 */
async function idleCost (path: string, m: BenchModel): Promise<Record<string, number>> {
  const { model } = await openModel(path)
  const range = await BlockRange.load(model, 0, m.config.nLayers / 4 - 1, await loadRuntime({ threads: THREADS }))
  const hidden = new Float32Array(m.config.dim).fill(0.01)
  const steps = async (gapMs: number): Promise<number> => {
    range.reset()
    const t: number[] = []
    for (let i = 0; i < IDLE_STEPS; i++) {
      if (gapMs > 0) await new Promise(resolve => setTimeout(resolve, gapMs))
      const t0 = performance.now()
      await range.forward(hidden, 1)
      t.push(performance.now() - t0)
    }
    return median(t.slice(4))
  }
  try {
    const warm: number[] = []
    const idle: number[] = []
    for (let r = 0; r < IDLE_ROUNDS; r++) {
      warm.push(await steps(0))
      idle.push(await steps(Math.round(3 * warm.at(-1)!)))
    }
    return { back_to_back_ms: ms(median(warm)), after_idle_ms: ms(median(idle)), after_idle_vs_back_to_back: roundRatio(idle, warm) }
  } finally {
    await range.release()
    await model.source.close?.()
  }
}

/** One chain of hosts in a mesh of its own (its own relay), with a client that pushes and one that does not. */
interface Chain {
  peers: number
  relay: Awaited<ReturnType<typeof startRelay>>
  hosts: PeerProcess[]
  pushing: PeerProcess
  relaying: PeerProcess
  /** The same blocks split into as many ranges in this process (none for one peer: that is the engine). */
  split?: SingleEngine
}

async function startChain (path: string, peers: number, m: BenchModel): Promise<Chain> {
  const relay = await startRelay()
  const started: PeerProcess[] = []
  const start = async (name: string, args: string[] = []): Promise<PeerProcess> => {
    const p = await startPeerProcess(relay.url, name, args, { startTimeoutMs: 180_000 })
    started.push(p)
    return p
  }
  try {
    const per = m.config.nLayers / peers
    const hosts: PeerProcess[] = []
    for (let i = 0; i < peers; i++) hosts.push(await start(`host-${i}`, ['--model', path, '--layers', `${i * per}-${(i + 1) * per - 1}`, '--memory-mb', '4096', '--threads', String(THREADS)]))
    const pushing = await start('bench-client')
    const relaying = await start('bench-client-no-push', ['--no-push'])
    for (const c of [pushing, relaying]) {
      await waitFor('full coverage', async () => {
        const v = await c.get('/v1/swarm')
        return v.models.some((m: any) => m.missing.length === 0 && m.servers.length === peers)
      }, 60_000, 300)
    }
    return { peers, relay, hosts, pushing, relaying, split: peers > 1 ? await singleEngine(path, m, peers) : undefined }
  } catch (err) {
    for (const p of started) await p.stop()
    await relay.stop()
    throw err
  }
}

async function stopChain (c: Chain): Promise<void> {
  await c.split?.close()
  for (const p of [c.pushing, c.relaying, ...c.hosts]) await p.stop()
  await c.relay.stop()
}

async function generate (c: PeerProcess, m: BenchModel): Promise<any> {
  // A random model says end-of-sequence early (after ~24 tokens here): every run decodes the full length.
  const res = await c.post('/v1/completions', { model: 'bench.gguf', prompt: PROMPT, max_tokens: m.decode, temperature: 0, ignore_eos: true })
  if (res.status !== 200) throw new Error(`generation failed: ${JSON.stringify(res.body)}`)
  if (res.body.clawnet.tokens.length !== m.decode) throw new Error(`decoded ${res.body.clawnet.tokens.length} tokens, not ${m.decode}`)
  return res.body.clawnet
}

/**
 * Each measurement starts after the previous generation's payments (blocks signed, delivered,
 * then fetched and verified by every agent) are done: on this one small machine they would
 * otherwise land on whatever runs next, where a real mesh spreads them over its agents.
 */
async function settled<T> (fn: () => Promise<T>): Promise<T> {
  await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
  return await fn()
}

/**
 * Decode tokens/s of each round (round 0, the warm-up, left out), and the pushing client's
 * hosts' compute per token, summed along the chain.
 */
interface Rounds { base: number[], split: number[], push: number[], relayed: number[], concurrent: number[], compute: number[], last: { push: any, relayed: any } }

const hostsComputeMs = (hops: HopTiming[]): number => ms(hops.reduce((n, h) => n + h.compute_ms, 0))

/**
 * This machine's speed drifts by tens of percent over minutes, so every chain and the single
 * engine take their turn in every round: each figure is compared with the same moments.
 */
async function measure (chains: Chain[], engine: SingleEngine, m: BenchModel): Promise<Rounds[]> {
  const rounds: Rounds[] = chains.map(() => ({ base: [], split: [], push: [], relayed: [], concurrent: [], compute: [], last: {} as Rounds['last'] }))
  for (let r = 0; r <= m.runs; r++) {
    const base = await settled(engine.run)
    for (const [i, c] of chains.entries()) {
      const split = c.split != null ? await settled(c.split.run) : base
      const last = { push: await settled(async () => await generate(c.pushing, m)), relayed: await settled(async () => await generate(c.relaying, m)) }
      if (c.peers > 1 && last.push.pushed_steps === 0) throw new Error('the pushing client\'s hosts pushed nothing')
      rounds[i].last = last
      if (r === 0) continue
      rounds[i].base.push(base)
      rounds[i].split.push(split)
      rounds[i].push.push(last.push.timings.decode_tokens_per_s)
      rounds[i].relayed.push(last.relayed.timings.decode_tokens_per_s)
      rounds[i].compute.push(hostsComputeMs(last.push.timings.hops))
    }
  }
  // Pipeline throughput: several generations at once keep every host busy, as Petals' servers
  // are with many clients; tokens generated by all of them per second of wall time.
  for (let r = 0; r < m.runs; r++) {
    for (const [i, c] of chains.entries()) {
      const t0 = await settled(async () => performance.now())
      const all = await Promise.all(Array.from({ length: CONCURRENT }, async () => await generate(c.pushing, m)))
      rounds[i].concurrent.push(all.reduce((n, x) => n + x.tokens.length, 0) / ((performance.now() - t0) / 1000))
    }
  }
  return rounds
}

/** The median over rounds of a / b, each pair taken in the same round. */
const roundRatio = (a: number[], b: number[]): number => ratio(exactQuantile(a.map((x, i) => x / b[i]), 0.5), 1)

async function benchModel (m: BenchModel, dir: string): Promise<Record<string, unknown>> {
  const path = join(dir, 'bench.gguf')
  const tok = await openFileSource(join(MODELS_DIR, 'stories260K/tok512.bin'))
  const vocab = await readLlama2cTokenizer(tok, 512).finally(async () => { await tok.close?.() })
  await writeFile(path, await randomLlamaGguf(m.config, vocab, { seed: 7, name: 'bench', type: m.type }))
  const engine = await singleEngine(path, m)
  const chains: Chain[] = []
  try {
    for (const peers of CHAINS) chains.push(await startChain(path, peers, m))
    const rounds = await measure(chains, engine, m)
    const idle = await idleCost(path, m)
    const figures: Record<string, Record<string, unknown>> = {}
    for (const [i, c] of chains.entries()) {
      const x = rounds[i]
      const [base, split, tps, relayedTps, concurrentTps] = [median(x.base), median(x.split), median(x.push), median(x.relayed), median(x.concurrent)]
      const hops = x.last.push.routes.at(-1).hops.length
      const hopTimings: HopTiming[] = x.last.push.timings.hops
      const perToken = (t: number): number => ms(1000 / t - 1000 / base)
      figures[`${c.peers}_peer${c.peers > 1 ? 's' : ''}`] = {
        // The in-process engine over the same rounds.
        single_engine_decode_tokens_per_s: base,
        decode_tokens_per_s: tps,
        hops,
        ratio_to_single_engine: roundRatio(x.push, x.base),
        // The same blocks split into as many ranges in this process, with no network: what the
        // split costs by itself, and what the mesh costs beyond it.
        in_process_split_decode_tokens_per_s: split,
        in_process_split_vs_single_engine: roundRatio(x.split, x.base),
        ratio_to_in_process_split: roundRatio(x.push, x.split),
        added_ms_per_token: perToken(tps),
        added_ms_per_hop: ms(perToken(tps) / hops),
        // The same chain with the client carrying every hidden state (no host-to-host pushes).
        client_relayed_decode_tokens_per_s: relayedTps,
        push_vs_client_relayed: roundRatio(x.push, x.relayed),
        [`tokens_per_s_with_${CONCURRENT}_concurrent_generations`]: concurrentTps,
        // Last run, per hop: the client's wait per decode step against the host's compute; and
        // what a token costs beyond the hops' medians (the client's own work, and tails).
        hop_timings: hopTimings,
        ms_per_token_outside_hop_medians: ms(1000 / tps - hopTimings.reduce((n, h) => n + h.wall_ms, 0)),
        // The hosts' compute per token, summed along the chain: a host that waited idle while the
        // others computed runs its blocks slower than one engine running them all back to back.
        hosts_compute_ms_per_token: median(x.compute),
        client_relayed_hop_timings: x.last.relayed.timings.hops
      }
      console.error(`${m.label} model, ${c.peers} peer(s): ${tps} tok/s pushed, ${relayedTps} relayed by the client (single engine ${base}, split in-process ${split}); ${concurrentTps} tok/s over ${CONCURRENT} concurrent generations`)
    }
    const [one, four] = [rounds[CHAINS.indexOf(1)], rounds[CHAINS.indexOf(4)]]
    const fourVsOne = roundRatio(four.push, one.push)
    const byRound = four.push.map((x, i) => ratio(x, one.push[i]))
    const interval = medianInterval(byRound)
    console.error(`${m.label} model, 4 peers vs 1 peer: ${fourVsOne} (median of ${byRound.length} rounds; ${Math.round(interval.coverage * 1000) / 10}% interval for it ${interval.low}–${interval.high})`)
    return {
      model: { params_millions: paramsMillions(m.config), weights: GgmlType[m.type ?? GgmlType.F32], ...m.config },
      decode_tokens: m.decode,
      runs: m.runs,
      chains: figures,
      // Round by round: the 4-host and the 1-host chain take their turns within seconds of each other.
      four_peer_vs_one_peer: fourVsOne,
      // Each round's own ratio, in round order: how far this machine's noise spreads the median.
      four_peer_vs_one_peer_by_round: byRound,
      // Where the true median lies, from the rounds alone (no assumption about the noise's shape).
      four_peer_vs_one_peer_interval: interval,
      // What the ratio would be if the extra hops' messages cost nothing.
      four_peer_vs_one_peer_compute_only: roundRatio(one.compute, four.compute),
      // One host's quarter of the blocks in this process, back to back and after idling between
      // steps as a chain host does: how much of the compute figure above waiting alone explains.
      quarter_of_the_blocks_one_step: idle,
      four_peer_vs_one_peer_client_relayed: roundRatio(four.relayed, one.relayed),
      [`four_peer_vs_one_peer_with_${CONCURRENT}_concurrent`]: roundRatio(four.concurrent, one.concurrent)
    }
  } finally {
    for (const c of chains) await stopChain(c)
    await engine.close()
    await rm(path, { force: true })
  }
}

export async function run (): Promise<Record<string, unknown>> {
  const only = process.env.BENCH_SWARM_MODELS?.split(',')
  // More rounds narrow the interval around the ratio's median (15 take it from [min, max] to the 4th and 12th).
  const runs = process.env.BENCH_SWARM_RUNS == null ? undefined : Number(process.env.BENCH_SWARM_RUNS)
  if (runs != null && !(Number.isSafeInteger(runs) && runs > 0)) throw new Error(`BENCH_SWARM_RUNS must be a positive integer, not ${process.env.BENCH_SWARM_RUNS}`)
  const dir = await mkdtemp(join(tmpdir(), 'clawnet-bench-swarm-'))
  try {
    const figures: Record<string, unknown> = {}
    for (const m of MODELS.filter(m => only == null || only.includes(m.label))) figures[`${m.label}_model`] = await benchModel({ ...m, runs: runs ?? m.runs }, dir)
    const cores = cpus()
    return { ...figures, engine_threads: THREADS, machine: { cores: cores.length, cpu: cores[0]?.model }, note: `Node peers on loopback (TCP links), one machine with ${cores.length} cores: the three chains (each in a mesh of its own, with its own relay), their clients and the relays share them, and take their turns round by round.` }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
