// Generality: random-weight Llama-family models of several shapes and weight types, written by
// our GGUF writer, must give llama.cpp's greedy tokens (node-llama-cpp, CPU, F32 KV cache).
// Float weights must match exactly. With quantized weights llama.cpp also rounds the activations
// to 8 bits inside each dot product (~1/127 relative error), which an f32 engine cannot
// reproduce: there the engine follows llama.cpp's tokens (teacher forcing) and each step must
// pick the same token unless its own top-2 margin is within 1% of the top logit, at most twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama, type Llama } from 'node-llama-cpp'
import { openFileSource } from '../../src/model/source.ts'
import { readLlama2cTokenizer } from '../../src/model/llama2c.ts'
import { openModel } from '../../src/model/open-model.ts'
import { GgmlType } from '../../src/model/ggml-types.ts'
import type { LlamaConfig } from '../../src/model/config.ts'
import type { Vocabulary } from '../../src/model/tokenizer.ts'
import { randomLlamaGguf } from '../../src/model/random-model.ts'
import { loadRuntime } from '../../src/engine/ort.ts'
import { LocalPipeline } from '../../src/engine/pipeline.ts'
import { BlockRange, KvCache } from '../../src/engine/stages.ts'
import { estimateMemory } from '../../src/engine/memory.ts'
import { llamaConfig } from '../helpers/llama-config.ts'

const base = llamaConfig({ dim: 64, hiddenDim: 160, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 16, vocabSize: 512, contextLength: 256 })

/**
 * Llama 3.1's rope scaling as its converter writes rope_freqs.weight: long wavelengths slowed by
 * `factor`, short ones kept, a smooth blend between. The original context here is 32 tokens
 * instead of 8192, so that the scaling changes rotations within this test's 32 positions.
 */
function llama3RopeFreqs (headDim: number, theta: number, factor = 8, low = 1, high = 4, original = 32): Float32Array {
  return Float32Array.from({ length: headDim / 2 }, (_, i) => {
    const wavelength = 2 * Math.PI * Math.pow(theta, (2 * i) / headDim)
    if (wavelength < original / high) return 1
    if (wavelength > original / low) return factor
    const smooth = (original / wavelength - low) / (high - low)
    return 1 / ((1 - smooth) / factor + smooth)
  })
}

const cases: Array<{ name: string, config: Partial<LlamaConfig>, type: GgmlType, outputType?: GgmlType, tensorTypes?: Record<string, GgmlType>, layers?: Array<[number, number]>, ropeFreqs?: Float32Array }> = [
  { name: 'more layers, GQA 4:1, rope theta 500000, untied head, F32', config: { nLayers: 7, dim: 128, hiddenDim: 256, nHeads: 8, nKvHeads: 2, ropeTheta: 500000, tiedEmbeddings: false }, type: GgmlType.F32, layers: [[0, 2], [3, 6]] },
  { name: 'multi-head (no GQA), tied, Q8_0', config: { nKvHeads: 4 }, type: GgmlType.Q8_0 },
  { name: 'head size 32, GQA 3:1, F16', config: { dim: 192, hiddenDim: 384, nHeads: 6, nKvHeads: 2, headDim: 32, tiedEmbeddings: false }, type: GgmlType.F16 },
  { name: 'Q4_0 weights, untied head', config: { dim: 96, hiddenDim: 256, nHeads: 6, nKvHeads: 3, tiedEmbeddings: false }, type: GgmlType.Q4_0 },
  { name: 'Q4_K weights, Q6_K head, multi-query', config: { dim: 256, hiddenDim: 512, nHeads: 4, nKvHeads: 1, headDim: 64, tiedEmbeddings: false }, type: GgmlType.Q4_K, outputType: GgmlType.Q6_K },
  { name: 'Llama 3.1 rope scaling (rope_freqs.weight), theta 500000, head size 64', config: { dim: 256, hiddenDim: 512, nHeads: 4, nKvHeads: 2, headDim: 64, ropeTheta: 500000, tiedEmbeddings: false }, type: GgmlType.F32, ropeFreqs: llama3RopeFreqs(64, 500000), layers: [[0, 0], [1, 1]] },
  { name: 'linear rope scaling x4 (rope.scaling.type linear)', config: { ropeLinearFactor: 4, tiedEmbeddings: false }, type: GgmlType.F32 },
  { name: 'Qwen2: q/k/v biases, neox rope, theta 1e6', config: { architecture: 'qwen2', ropeStyle: 'neox', qkvBias: true, ropeTheta: 1e6, tiedEmbeddings: false }, type: GgmlType.F32 },
  // Packed Q8_0 q/k next to a dequantized Q6_K v in one fused q/k/v projection.
  { name: 'mixed Q8_0 with Q6_K attn_v and ffn_down', config: { dim: 256, hiddenDim: 512, nHeads: 4, nKvHeads: 2, headDim: 64, tiedEmbeddings: false }, type: GgmlType.Q8_0, tensorTypes: { 'blk.0.attn_v.weight': GgmlType.Q6_K, 'blk.1.attn_v.weight': GgmlType.Q6_K, 'blk.0.ffn_down.weight': GgmlType.Q6_K }, layers: [[0, 0], [1, 1]] }
]

const PROMPT = [1, 400, 290, 17, 300, 261, 377, 45]
const GENERATE = 24

let llama: Llama
let dir: string
let vocab: Vocabulary

beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as any })
  dir = await mkdtemp(join(tmpdir(), 'clawnet-llamacpp-'))
  const tok = await openFileSource('../shared/models/stories260K/tok512.bin')
  vocab = await readLlama2cTokenizer(tok, 512)
  await tok.close?.()
}, 60_000)

afterAll(async () => {
  await llama?.dispose()
  await rm(dir, { recursive: true, force: true })
})

async function llamaCppGreedy (path: string, prompt = PROMPT, count = GENERATE): Promise<number[]> {
  const model = await llama.loadModel({ modelPath: path })
  const context = await model.createContext({ contextSize: 256, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } as any)
  const out: number[] = []
  for await (const token of context.getSequence().evaluate(prompt as any, { temperature: 0 })) {
    out.push(token as number)
    if (out.length >= count || token === 2) break
  }
  // node-llama-cpp ends the evaluation at the end-of-sequence token without yielding it.
  if (out.length < count && out.at(-1) !== 2) out.push(model.tokens.eos as number)
  await context.dispose()
  await model.dispose()
  return out
}

/** Teacher-forced comparison: each step must pick llama.cpp's token unless it is a near-tie. */
async function followLlamaCpp (pipeline: LocalPipeline, expected: number[], tieFraction: number): Promise<void> {
  let logits = await pipeline.step(PROMPT)
  const nearTies: string[] = []
  for (const [step, want] of expected.entries()) {
    const [first, second] = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a])
    if (first !== want) {
      const margin = logits[first] - logits[second]
      expect(second, `step ${step}: llama.cpp chose ${want}, the engine ${first} (and ${second} second)`).toBe(want)
      expect(margin, `step ${step}: llama.cpp chose ${want} over the engine's ${first} by a margin of ${margin}`).toBeLessThan(tieFraction * Math.abs(logits[first]))
      nearTies.push(`step ${step}: ${first} vs ${want}, margin ${margin.toFixed(4)}`)
    }
    logits = await pipeline.step([want])
  }
  expect(nearTies.length, nearTies.join('; ')).toBeLessThanOrEqual(2)
  await pipeline.release()
}

describe('engine vs llama.cpp on random-weight GGUF models', () => {
  cases.forEach((tc, i) => {
    it(tc.name, async () => {
      const config = { ...base, ...tc.config }
      const path = join(dir, `case${i}.gguf`)
      const write = async (file: string, c: LlamaConfig, ropeFreqs?: Float32Array): Promise<void> => {
        await writeFile(file, await randomLlamaGguf(c, vocab, { seed: 11 + i, type: tc.type, outputType: tc.outputType, tensorTypes: tc.tensorTypes, ropeFreqs }))
      }
      await write(path, config, tc.ropeFreqs)
      const expected = await llamaCppGreedy(path)
      expect(new Set(expected).size, 'a degenerate model repeating one token would prove little').toBeGreaterThan(3)
      if (tc.ropeFreqs != null || config.ropeLinearFactor !== 1) {
        // An engine ignoring the scaling must fail this case: without it, llama.cpp answers otherwise.
        const unscaled = join(dir, `case${i}-unscaled.gguf`)
        await write(unscaled, { ...config, ropeLinearFactor: 1 })
        expect(await llamaCppGreedy(unscaled)).not.toEqual(expected)
      }
      const quantized = tc.type !== GgmlType.F32 && tc.type !== GgmlType.F16
      const { model } = await openModel(path)
      if (!quantized) {
        const pipeline = await LocalPipeline.load(model, await loadRuntime(), tc.layers)
        const { tokens } = await pipeline.generate(PROMPT, { maxTokens: GENERATE, stopTokens: new Set([2]) })
        expect(tokens).toEqual(expected)
        await pipeline.release()
      } else {
        // Dequantized to float32: only llama.cpp rounds activations.
        await followLlamaCpp(await LocalPipeline.load(model, await loadRuntime({ packedMatMul: false }), tc.layers), expected, 0.01)
        if (tc.type === GgmlType.Q8_0 || tc.type === GgmlType.Q4_0) {
          // The int8 path (Node's default for these types) rounds activations itself,
          // independently of llama.cpp: two roundings.
          const runtime = await loadRuntime()
          expect(runtime.packedMatMul).toBe(true)
          // Packed weights need 36 (Q8_0) or 20 (Q4_0) bytes per 32 values instead of 128.
          const [packedEstimate, f32Estimate] = [estimateMemory(model, tc.layers, 256, { packedMatMul: true }), estimateMemory(model, tc.layers, 256)]
          expect(packedEstimate.weightBytes).toBeLessThan(f32Estimate.weightBytes * 0.5)
          await followLlamaCpp(await LocalPipeline.load(model, runtime, tc.layers), expected, 0.02)
        }
      }
      await model.source.close?.()
    }, 60_000)
  })

  it('fused attention: chunked prefill, a KV cache that grows in place, and ranges split over several sessions give llama.cpp\'s tokens, as plain ops do', async () => {
    const path = join(dir, 'fused.gguf')
    await writeFile(path, await randomLlamaGguf({ ...base, ...cases[0].config }, vocab, { seed: 11, type: GgmlType.F32 }))
    const expected = await llamaCppGreedy(path)
    const { model } = await openModel(path)
    const [savedStep, savedGraph] = [KvCache.growthStep, BlockRange.maxGraphBytes]
    KvCache.growthStep = 4 // grows every 4 positions over the prompt and the generated tokens
    try {
      for (const fusedAttention of [true, false]) {
        for (const split of [false, true]) {
          // Split: every block in a session of its own, as a range over the graph limit runs.
          BlockRange.maxGraphBytes = split ? 1 : savedGraph
          const pipeline = await LocalPipeline.load(model, await loadRuntime({ fusedAttention }), [[0, 2], [3, 6]])
          expect(pipeline.ranges.map(r => r.attention)).toEqual(fusedAttention ? ['fused', 'fused'] : ['ops', 'ops'])
          expect(pipeline.ranges.map(r => r.sessions)).toEqual(split ? [3, 4] : [1, 1])
          for (const prefillChunk of [3, 256]) {
            pipeline.reset()
            const { tokens } = await pipeline.generate(PROMPT, { maxTokens: GENERATE, stopTokens: new Set([2]), prefillChunk })
            expect(tokens, `fusedAttention ${String(fusedAttention)}, split ${String(split)}, prefill chunk ${prefillChunk}`).toEqual(expected)
          }
          // A second cache over the same weights is independent of the range's own.
          const other = pipeline.ranges[0].newCache()
          await pipeline.ranges[0].forward(new Float32Array(model.config.dim * 5).fill(0.5), 5, other)
          expect([other.position, pipeline.ranges[0].position]).toEqual([5, PROMPT.length + GENERATE - 1])
          other.dispose()
          await pipeline.release()
        }
      }
    } finally {
      [KvCache.growthStep, BlockRange.maxGraphBytes] = [savedStep, savedGraph]
    }
    await model.source.close?.()
  }, 60_000)

  it('clawnet convert writes stories260K as GGUF that llama.cpp and the engine both run to the reference', async () => {
    const reference = JSON.parse(await readFile('../shared/models/stories260K/reference.json', 'utf8'))
    const out = join(dir, 'converted.gguf')
    await promisify(execFile)('node', ['bin/clawnet.js', 'convert', '--model', '../shared/models/stories260K/stories260K.bin', '--out', out])
    const ref = reference.results[0]
    const model = await llama.loadModel({ modelPath: out })
    expect(model.tokenize(ref.prompt)).toEqual(ref.prompt_tokens_with_bos.slice(1))
    await model.dispose()
    const { model: ours, tokenizer } = await openModel(out)
    expect(tokenizer.encode(ref.prompt)).toEqual(ref.prompt_tokens_with_bos)
    const pipeline = await LocalPipeline.load(ours, await loadRuntime())
    expect((await pipeline.generate(ref.prompt_tokens_with_bos, { maxTokens: 64 })).tokens).toEqual(ref.generated_tokens)
    await pipeline.release()
    await ours.source.close?.()
    expect(await llamaCppGreedy(out, ref.prompt_tokens_with_bos, 64)).toEqual(ref.generated_tokens)
  })
})
