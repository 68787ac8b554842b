// Engine CPU path (onnxruntime-node) vs llama.cpp (node-llama-cpp, CPU) on the same random-weight
// GGUF, big enough (~39M parameters) for compute and memory traffic to dominate: prefill and
// decode tokens/s, each side at its best thread count, medians of several runs, and the ratio.
// For Q8_0 the engine runs twice: packed with int8 matmuls (the Node default) and dequantized to
// float32 (_f32). For F32 at one thread it also runs with plain attention ops and a KV cache that
// grows by Concat (_ops), the path before fused GroupQueryAttention, for a side-by-side figure.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama } from 'node-llama-cpp'
import { GgmlType } from '../src/model/ggml-types.ts'
import { llamaConfig } from '../test/helpers/llama-config.ts'
import { randomLlamaGguf } from '../src/model/random-model.ts'
import { openFileSource } from '../src/model/source.ts'
import { readLlama2cTokenizer } from '../src/model/llama2c.ts'
import { openModel } from '../src/model/open-model.ts'
import { loadRuntime } from '../src/engine/ort.ts'
import { LocalPipeline } from '../src/engine/pipeline.ts'
import { ownCpuMs } from './measure.ts'

const CONFIG = llamaConfig({ dim: 768, hiddenDim: 2048, nLayers: 6, nHeads: 12, nKvHeads: 4, headDim: 64, vocabSize: 512, contextLength: 512, tiedEmbeddings: false })
const PROMPT_TOKENS = 128
const DECODE_TOKENS = 64
const RUNS = 3
const THREADS = [1, 2]

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const round = (x: number): number => Math.round(x * 100) / 100
const prompt = Array.from({ length: PROMPT_TOKENS }, (_, i) => i === 0 ? 1 : 3 + ((i * 37) % 500))

/**
 * Wall-clock tokens/s, and CPU milliseconds per decoded token (process.cpuUsage, all threads:
 * llama.cpp runs in this process too). On a shared machine the CPU figure moves far less with
 * other jobs' load than wall time does.
 */
interface Speeds { prefill: number, decode: number, decodeCpuMs: number }


async function engineSpeeds (path: string, threads: number, opts: { packedMatMul?: boolean, fusedAttention?: boolean } = {}): Promise<Speeds> {
  const { model } = await openModel(path)
  const pipeline = await LocalPipeline.load(model, await loadRuntime({ threads, ...opts }))
  const prefill: number[] = []
  const decode: number[] = []
  const decodeCpu: number[] = []
  for (let r = 0; r <= RUNS; r++) {
    pipeline.reset()
    let cpuFirst = 0
    const { timings } = await pipeline.generate(prompt, { maxTokens: DECODE_TOKENS + 1, onToken: () => { if (cpuFirst === 0) cpuFirst = ownCpuMs() } })
    const cpuEnd = ownCpuMs()
    if (r === 0) continue // warm-up
    prefill.push(timings.prefill_tokens_per_s)
    decode.push(timings.decode_tokens_per_s)
    decodeCpu.push((cpuEnd - cpuFirst) / DECODE_TOKENS)
  }
  await pipeline.release()
  await model.source.close?.()
  return { prefill: median(prefill), decode: median(decode), decodeCpuMs: median(decodeCpu) }
}

async function llamaCppSpeeds (path: string, threads: number): Promise<Speeds> {
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as any })
  const model = await llama.loadModel({ modelPath: path })
  const context = await model.createContext({ contextSize: 512, batchSize: 512, threads })
  const prefill: number[] = []
  const decode: number[] = []
  const decodeCpu: number[] = []
  for (let r = 0; r <= RUNS; r++) {
    const sequence = context.getSequence()
    const t0 = performance.now()
    let first = 0
    let cpuFirst = 0
    let n = 0
    for await (const _ of sequence.evaluate(prompt as any, { temperature: 0 })) {
      if (n === 0) { first = performance.now(); cpuFirst = ownCpuMs() }
      if (++n > DECODE_TOKENS) break
    }
    const t1 = performance.now()
    const cpuEnd = ownCpuMs()
    sequence.dispose()
    if (r === 0) continue
    // The first token's wait is the prompt pass (plus one sampling); the rest are decode steps.
    prefill.push(PROMPT_TOKENS / ((first - t0) / 1000))
    decode.push(DECODE_TOKENS / ((t1 - first) / 1000))
    decodeCpu.push((cpuEnd - cpuFirst) / DECODE_TOKENS)
  }
  await context.dispose()
  await model.dispose()
  await llama.dispose()
  return { prefill: median(prefill), decode: median(decode), decodeCpuMs: median(decodeCpu) }
}

export async function run (): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'clawnet-bench-'))
  try {
    const tok = await openFileSource('../shared/models/stories260K/tok512.bin')
    const vocab = await readLlama2cTokenizer(tok, 512)
    await tok.close?.()
    const results: Record<string, unknown> = {}
    for (const [label, type] of [['f32', GgmlType.F32], ['q8_0', GgmlType.Q8_0]] as const) {
      const path = join(dir, `bench-${label}.gguf`)
      const bytes = await randomLlamaGguf(CONFIG, vocab, { seed: 5, type })
      await writeFile(path, bytes)
      const engine: Record<string, Speeds> = {}
      const cpp: Record<string, Speeds> = {}
      for (const t of THREADS) {
        engine[`threads_${t}`] = await engineSpeeds(path, t)
        // Q8_0 can also be dequantized to float32 at load (4x the bytes per token).
        if (type === GgmlType.Q8_0) engine[`threads_${t}_f32`] = await engineSpeeds(path, t, { packedMatMul: false })
        if (type === GgmlType.F32 && t === 1) engine[`threads_${t}_ops`] = await engineSpeeds(path, t, { fusedAttention: false })
        cpp[`threads_${t}`] = await llamaCppSpeeds(path, t)
      }
      const best = (m: Record<string, Speeds>, k: keyof Speeds): [string, number] => Object.entries(m).map(([t, s]) => [t, s[k]] as [string, number]).sort((a, b) => b[1] - a[1])[0]
      const [ePre, eDec] = [best(engine, 'prefill'), best(engine, 'decode')]
      const [cPre, cDec] = [best(cpp, 'prefill'), best(cpp, 'decode')]
      const leastCpu = (m: Record<string, Speeds>): [string, number] => Object.entries(m).map(([t, s]) => [t, s.decodeCpuMs] as [string, number]).sort((a, b) => a[1] - b[1])[0]
      const [eCpu, cCpu] = [leastCpu(engine), leastCpu(cpp)]
      results[label] = {
        file_mib: round(bytes.length / 2 ** 20),
        engine_tokens_per_s: Object.fromEntries(Object.entries(engine).map(([k, v]) => [k, { prefill: round(v.prefill), decode: round(v.decode), decode_cpu_ms_per_token: round(v.decodeCpuMs) }])),
        llamacpp_tokens_per_s: Object.fromEntries(Object.entries(cpp).map(([k, v]) => [k, { prefill: round(v.prefill), decode: round(v.decode), decode_cpu_ms_per_token: round(v.decodeCpuMs) }])),
        best: {
          prefill: { engine: round(ePre[1]), engine_at: ePre[0], llamacpp: round(cPre[1]), llamacpp_at: cPre[0], ratio: round(ePre[1] / cPre[1]) },
          decode: { engine: round(eDec[1]), engine_at: eDec[0], llamacpp: round(cDec[1]), llamacpp_at: cDec[0], ratio: round(eDec[1] / cDec[1]) },
          // llama.cpp's CPU ms per token over the engine's (higher is better for the engine, like the speed ratio).
          decode_cpu: { engine_ms: round(eCpu[1]), engine_at: eCpu[0], llamacpp_ms: round(cCpu[1]), llamacpp_at: cCpu[0], ratio: round(cCpu[1] / eCpu[1]) }
        }
      }
    }
    const params = [CONFIG.dim * CONFIG.vocabSize * 2, CONFIG.nLayers * (2 * CONFIG.dim * CONFIG.nHeads * CONFIG.headDim + 2 * CONFIG.dim * CONFIG.nKvHeads * CONFIG.headDim + 3 * CONFIG.dim * CONFIG.hiddenDim)].reduce((a, b) => a + b)
    return { model: { ...CONFIG, parameters: params }, prompt_tokens: PROMPT_TOKENS, decode_tokens: DECODE_TOKENS, runs: RUNS, ...results }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
