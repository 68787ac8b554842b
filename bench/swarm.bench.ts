// Distributed inference on loopback: decode tokens/s through a chain of 1, 2 and 4 host
// processes (each hosting an equal share of the blocks), side by side with one engine running
// the whole model in-process; the ratio, and the time each extra hop adds per token.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LlamaConfig } from '../src/model/config.ts'
import { randomLlamaGguf } from '../src/model/random-model.ts'
import { openFileSource } from '../src/model/source.ts'
import { readLlama2cTokenizer } from '../src/model/llama2c.ts'
import { openModel } from '../src/model/open-model.ts'
import { loadRuntime } from '../src/engine/ort.ts'
import { LocalPipeline } from '../src/engine/pipeline.ts'
import { startRelay, MODELS_DIR } from '../test/helpers/relay.ts'
import { startPeerProcess, waitFor, type PeerProcess } from '../test/helpers/peer-process.ts'
import { median } from '../src/stats.ts'

/** ~27M parameters: big enough that compute, not messaging, dominates a step. */
const CONFIG: LlamaConfig = {
  architecture: 'llama', dim: 512, hiddenDim: 1536, nLayers: 8, nHeads: 8, nKvHeads: 4, headDim: 64, vocabSize: 512,
  contextLength: 512, normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'interleaved', ropeLinearFactor: 1, tiedEmbeddings: false, qkvBias: false
}
const DECODE = 48
const RUNS = 3
const PROMPT = 'Once upon a time there was a mesh of agents'

async function single (path: string): Promise<number> {
  const { model, tokenizer } = await openModel(path)
  const pipeline = await LocalPipeline.load(model, await loadRuntime({ threads: 1 }))
  const speeds: number[] = []
  for (let r = 0; r <= RUNS; r++) {
    pipeline.reset()
    const { timings } = await pipeline.generate(tokenizer.encode(PROMPT), { maxTokens: DECODE })
    if (r > 0) speeds.push(timings.decode_tokens_per_s)
  }
  await pipeline.release()
  return median(speeds)
}

async function mesh (path: string, relayUrl: string, peers: number): Promise<{ tps: number, hops: number, hopTimings: unknown }> {
  const per = CONFIG.nLayers / peers
  const hosts: PeerProcess[] = []
  let client: PeerProcess | undefined
  try {
    for (let i = 0; i < peers; i++) {
      hosts.push(await startPeerProcess(relayUrl, `host-${i}`, ['--host-model', path, '--layers', `${i * per}-${(i + 1) * per - 1}`, '--memory-mb', '4096'], { startTimeoutMs: 180_000 }))
    }
    client = await startPeerProcess(relayUrl, 'bench-client')
    const c = client
    await waitFor('full coverage', async () => {
      const v = await c.get('/v1/swarm')
      return v.models.some((m: any) => m.missing.length === 0 && m.servers.length === peers)
    }, 60_000, 300)
    const speeds: number[] = []
    let hops = 0
    let hopTimings: unknown
    for (let r = 0; r <= RUNS; r++) {
      const res = await c.post('/v1/completions', { model: 'bench.gguf', prompt: PROMPT, max_tokens: DECODE, temperature: 0 })
      if (res.status !== 201) throw new Error(`generation failed: ${JSON.stringify(res.body)}`)
      hops = res.body.clawnet.routes.at(-1).hops.length
      hopTimings = res.body.clawnet.timings.hops
      if (r > 0) speeds.push(res.body.clawnet.timings.decode_tokens_per_s)
    }
    return { tps: median(speeds), hops, hopTimings }
  } finally {
    await client?.stop()
    for (const h of hosts) await h.stop()
  }
}

export async function run (): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'clawnet-bench-swarm-'))
  const path = join(dir, 'bench.gguf')
  const vocab = await readLlama2cTokenizer(await openFileSource(join(MODELS_DIR, 'stories260K/tok512.bin')), 512)
  await writeFile(path, await randomLlamaGguf(CONFIG, vocab, { seed: 7, name: 'bench' }))
  const relay = await startRelay()
  try {
    const base = await single(path)
    const chains: Record<string, unknown> = {}
    for (const peers of [1, 2, 4]) {
      const { tps, hops, hopTimings } = await mesh(path, relay.url, peers)
      chains[`${peers}_peer${peers > 1 ? 's' : ''}`] = {
        decode_tokens_per_s: tps,
        hops,
        ratio_to_single_engine: Math.round((tps / base) * 1000) / 1000,
        added_ms_per_token: Math.round((1000 / tps - 1000 / base) * 100) / 100,
        added_ms_per_hop: Math.round(((1000 / tps - 1000 / base) / hops) * 100) / 100,
        // Last run, per hop: the client's wait per decode step against the host's compute.
        hop_timings: hopTimings
      }
      console.error(`${peers} peer(s): ${tps} tok/s (single engine ${base})`)
    }
    const four = chains['4_peers'] as { decode_tokens_per_s: number }
    const one = chains['1_peer'] as { decode_tokens_per_s: number }
    return {
      model: { params_millions: 27, ...CONFIG },
      decode_tokens: DECODE,
      runs: RUNS,
      single_engine_decode_tokens_per_s: base,
      chains,
      four_peer_vs_one_peer: Math.round((four.decode_tokens_per_s / one.decode_tokens_per_s) * 1000) / 1000,
      note: 'Node peers on loopback, one machine with 2 cores: hosts, client and relay share them.'
    }
  } finally {
    await relay.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
