// Distributed inference on loopback: decode tokens/s through a chain of 1, 2 and 4 host
// processes (each hosting an equal share of the blocks), side by side with one engine running
// the whole model in-process (and with its blocks split into the same ranges, still in-process,
// to tell the split's own cost from the network's); the ratio, the time each extra hop adds per token, and the
// throughput of the pipeline when several generations run through it at once. Each chain is
// driven by two clients in turn: one whose hosts push decode steps to each other (the default)
// and one that carries every hidden state itself (--no-push). Two models: a small one, where
// messaging dominates a token, and one where compute does, as it does for the models a mesh is for.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
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
import { startRelay, MODELS_DIR } from '../test/helpers/relay.ts'
import { startPeerProcess, waitFor, type PeerProcess } from '../test/helpers/peer-process.ts'
import { median } from '../src/stats.ts'
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
  { label: 'small', config: BASE, decode: 48, runs: 5 },
  // ~400M parameters, Q8_0 (what people download): a token costs ~30 ms of compute on one thread here.
  { label: 'large', config: { ...BASE, dim: 1536, hiddenDim: 4096, nLayers: 16, nHeads: 12, nKvHeads: 4, headDim: 128 }, type: GgmlType.Q8_0, decode: 16, runs: 3 }
]
const CONCURRENT = 4
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

interface ChainFigures { base: number, split: number, tps: number, relayedTps: number, hops: number, hopTimings: HopTiming[], relayedHopTimings: HopTiming[], concurrentTps: number }

/**
 * One chain's figures. This machine's speed drifts by tens of percent over minutes, so the single
 * engine takes its turn in every round too: each chain is also compared with the same moments.
 */
async function mesh (path: string, relayUrl: string, peers: number, m: BenchModel, engine: SingleEngine): Promise<ChainFigures> {
  const per = m.config.nLayers / peers
  const hosts: PeerProcess[] = []
  const clients: PeerProcess[] = []
  const split = peers > 1 ? await singleEngine(path, m, peers) : undefined
  try {
    for (let i = 0; i < peers; i++) {
      hosts.push(await startPeerProcess(relayUrl, `host-${i}`, ['--model', path, '--layers', `${i * per}-${(i + 1) * per - 1}`, '--memory-mb', '4096', '--threads', String(THREADS)], { startTimeoutMs: 180_000 }))
    }
    const pushing = await startPeerProcess(relayUrl, 'bench-client')
    const relaying = await startPeerProcess(relayUrl, 'bench-client-no-push', ['--no-push'])
    clients.push(pushing, relaying)
    for (const c of clients) {
      await waitFor('full coverage', async () => {
        const v = await c.get('/v1/swarm')
        return v.models.some((m: any) => m.missing.length === 0 && m.servers.length === peers)
      }, 60_000, 300)
    }
    const generate = async (c: PeerProcess): Promise<any> => {
      // A random model says end-of-sequence early (after ~24 tokens here): every run decodes the full length.
      const res = await c.post('/v1/completions', { model: 'bench.gguf', prompt: PROMPT, max_tokens: m.decode, temperature: 0, ignore_eos: true })
      if (res.status !== 201) throw new Error(`generation failed: ${JSON.stringify(res.body)}`)
      if (res.body.clawnet.tokens.length !== m.decode) throw new Error(`decoded ${res.body.clawnet.tokens.length} tokens, not ${m.decode}`)
      return res.body.clawnet
    }
    // The engine and the two clients take turns, so all three see the same moments of this noisy machine.
    const speeds: Record<'base' | 'split' | 'push' | 'relayed', number[]> = { base: [], split: [], push: [], relayed: [] }
    let last: Record<'push' | 'relayed', any> = { push: undefined, relayed: undefined }
    // Each measurement starts after the previous generation's payments (blocks signed, delivered,
    // then fetched and verified by every agent) are done: on this one small machine they would
    // otherwise land on whatever runs next, where a real mesh spreads them over its agents.
    const settled = async <T>(fn: () => Promise<T>): Promise<T> => {
      await new Promise(resolve => setTimeout(resolve, SETTLE_MS))
      return await fn()
    }
    for (let r = 0; r <= m.runs; r++) {
      const base = await settled(engine.run)
      const inProcessSplit = split != null ? await settled(split.run) : base
      last = { push: await settled(async () => await generate(pushing)), relayed: await settled(async () => await generate(relaying)) }
      if (peers > 1 && last.push.pushed_steps === 0) throw new Error('the pushing client\'s hosts pushed nothing')
      if (r > 0) {
        speeds.base.push(base)
        speeds.split.push(inProcessSplit)
        speeds.push.push(last.push.timings.decode_tokens_per_s)
        speeds.relayed.push(last.relayed.timings.decode_tokens_per_s)
      }
    }
    // Pipeline throughput: several generations at once keep every host busy, as Petals' servers
    // are with many clients; tokens generated by all of them per second of wall time.
    const aggregate: number[] = []
    for (let r = 0; r < m.runs; r++) {
      const t0 = performance.now()
      const all = await Promise.all(Array.from({ length: CONCURRENT }, async () => await generate(pushing)))
      aggregate.push(all.reduce((n, x) => n + x.tokens.length, 0) / ((performance.now() - t0) / 1000))
    }
    return {
      base: median(speeds.base),
      split: median(speeds.split),
      tps: median(speeds.push),
      relayedTps: median(speeds.relayed),
      hops: last.push.routes.at(-1).hops.length,
      hopTimings: last.push.timings.hops,
      relayedHopTimings: last.relayed.timings.hops,
      concurrentTps: median(aggregate)
    }
  } finally {
    await split?.close()
    for (const c of clients) await c.stop()
    for (const h of hosts) await h.stop()
  }
}

async function benchModel (m: BenchModel, dir: string, relayUrl: string): Promise<Record<string, unknown>> {
  const path = join(dir, 'bench.gguf')
  const tok = await openFileSource(join(MODELS_DIR, 'stories260K/tok512.bin'))
  const vocab = await readLlama2cTokenizer(tok, 512).finally(async () => { await tok.close?.() })
  await writeFile(path, await randomLlamaGguf(m.config, vocab, { seed: 7, name: 'bench', type: m.type }))
  const engine = await singleEngine(path, m)
  try {
    const chains: Record<string, Record<string, unknown>> = {}
    for (const peers of [1, 2, 4]) {
      const { base, split, tps, relayedTps, hops, hopTimings, relayedHopTimings, concurrentTps } = await mesh(path, relayUrl, peers, m, engine)
      const perToken = (x: number): number => ms(1000 / x - 1000 / base)
      chains[`${peers}_peer${peers > 1 ? 's' : ''}`] = {
        // The in-process engine over the same rounds.
        single_engine_decode_tokens_per_s: base,
        decode_tokens_per_s: tps,
        hops,
        ratio_to_single_engine: ratio(tps, base),
        // The same blocks split into as many ranges in this process, with no network: what the
        // split costs by itself, and what the mesh costs beyond it.
        in_process_split_decode_tokens_per_s: split,
        in_process_split_vs_single_engine: ratio(split, base),
        ratio_to_in_process_split: ratio(tps, split),
        added_ms_per_token: perToken(tps),
        added_ms_per_hop: ms(perToken(tps) / hops),
        // The same chain with the client carrying every hidden state (no host-to-host pushes).
        client_relayed_decode_tokens_per_s: relayedTps,
        push_vs_client_relayed: ratio(tps, relayedTps),
        [`tokens_per_s_with_${CONCURRENT}_concurrent_generations`]: concurrentTps,
        // Last run, per hop: the client's wait per decode step against the host's compute; and
        // what a token costs beyond the hops' medians (the client's own work, and tails).
        hop_timings: hopTimings,
        ms_per_token_outside_hop_medians: ms(1000 / tps - hopTimings.reduce((n, h) => n + h.wall_ms, 0)),
        client_relayed_hop_timings: relayedHopTimings
      }
      console.error(`${m.label} model, ${peers} peer(s): ${tps} tok/s pushed, ${relayedTps} relayed by the client (single engine ${base}, split in-process ${split}); ${concurrentTps} tok/s over ${CONCURRENT} concurrent generations`)
    }
    const four = chains['4_peers'] as Record<string, number>
    const one = chains['1_peer'] as Record<string, number>
    const concurrentKey = `tokens_per_s_with_${CONCURRENT}_concurrent_generations`
    return {
      model: { params_millions: paramsMillions(m.config), weights: GgmlType[m.type ?? GgmlType.F32], ...m.config },
      decode_tokens: m.decode,
      runs: m.runs,
      chains,
      four_peer_vs_one_peer: ratio(four.decode_tokens_per_s, one.decode_tokens_per_s),
      // The same, each chain first measured against the engine in its own rounds: the machine's
      // drift between the two chains' minutes divides out.
      four_peer_vs_one_peer_against_their_single_engine: ratio(four.ratio_to_single_engine, one.ratio_to_single_engine),
      four_peer_vs_one_peer_client_relayed: ratio(four.client_relayed_decode_tokens_per_s, one.client_relayed_decode_tokens_per_s),
      [`four_peer_vs_one_peer_with_${CONCURRENT}_concurrent`]: ratio(four[concurrentKey], one[concurrentKey])
    }
  } finally {
    await engine.close()
    await rm(path, { force: true })
  }
}

export async function run (): Promise<Record<string, unknown>> {
  const only = process.env.BENCH_SWARM_MODELS?.split(',')
  const dir = await mkdtemp(join(tmpdir(), 'clawnet-bench-swarm-'))
  const relay = await startRelay()
  try {
    const figures: Record<string, unknown> = {}
    for (const m of MODELS.filter(m => only == null || only.includes(m.label))) figures[`${m.label}_model`] = await benchModel(m, dir, relay.url)
    return { ...figures, engine_threads: THREADS, note: 'Node peers on loopback (TCP links), one machine with 2 cores: hosts, clients and relay share them.' }
  } finally {
    await relay.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
