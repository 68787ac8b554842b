// stories260K in all three files must reproduce llama2.c's greedy token ids exactly, whole and
// split into block ranges that pass hidden states between separately loaded engines.
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { openModel } from '../../src/model/open-model.ts'
import { loadRuntime } from '../../src/engine/ort.ts'
import { LocalPipeline, parseLayerRanges } from '../../src/engine/pipeline.ts'
import { BlockRange } from '../../src/engine/stages.ts'
import { buildHeadGraph, splitLinear, type QuantizedMatrix } from '../../src/engine/llama-graph.ts'
import { readMatrix } from '../../src/engine/weights.ts'
import { ModelProto } from '../../src/engine/onnx-proto.ts'

const dir = '../shared/models/stories260K'
const reference = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8'))
const files = ['stories260K.bin', 'stories260K.gguf', 'stories260K-tied.gguf']

describe('stories260K reference', () => {
  for (const file of files) {
    for (const split of [undefined, '0-1,2-4', '0,1-3,4']) {
      it(`${file} ${split ?? 'whole'} gives llama2.c's 64 greedy ids for both prompts`, async () => {
        const { model, tokenizer } = await openModel(`${dir}/${file}`)
        const runtime = await loadRuntime()
        const pipeline = await LocalPipeline.load(model, runtime, parseLayerRanges(split, model.config.nLayers))
        for (const ref of reference.results) {
          const prompt = tokenizer.encode(ref.prompt)
          expect(prompt).toEqual(ref.prompt_tokens_with_bos)
          pipeline.reset()
          const { tokens } = await pipeline.generate(prompt, { maxTokens: 64, stopTokens: tokenizer.stopTokens })
          expect(tokens).toEqual(ref.generated_tokens)
          expect(tokenizer.decode(tokens)).toBe(ref.text)
        }
        await pipeline.release()
        await model.source.close?.()
      })
    }
  }

  it('tensors over a device buffer limit are split into column groups with exactly the same ids', async () => {
    const { model, tokenizer } = await openModel(`${dir}/stories260K.gguf`)
    const limit = 10_000 // every projection of stories260K is bigger: q 16 KiB, ffn 44 KiB, head 128 KiB
    const head = buildHeadGraph(model.config, new Float32Array(64).fill(1), await readMatrix(model, 'token_embd.weight'), { maxTensorBytes: limit })
    const initializers = ModelProto.decode(head).graph.initializer
    expect(initializers.length).toBeGreaterThan(10)
    for (const t of initializers) expect(t.rawData.length, t.name).toBeLessThanOrEqual(limit)
    const pipeline = await LocalPipeline.load(model, { ...await loadRuntime(), maxBufferBytes: limit }, [[0, 1], [2, 4]])
    for (const ref of reference.results) {
      pipeline.reset()
      const { tokens } = await pipeline.generate(tokenizer.encode(ref.prompt), { maxTokens: 64, stopTokens: tokenizer.stopTokens })
      expect(tokens).toEqual(ref.generated_tokens)
    }
    await pipeline.release()
    // One output column of the head (64 floats) cannot be split further.
    await expect(LocalPipeline.load(model, { ...await loadRuntime(), maxBufferBytes: 255 })).rejects.toThrow(/exceeds this device's largest buffer/)
    // A block that one ONNX graph cannot hold is refused by name, before any session is made.
    const saved = BlockRange.graphLimitBytes
    BlockRange.graphLimitBytes = 100_000 // a stories260K block takes ~180 KB as float32
    try {
      await expect(LocalPipeline.load(model, await loadRuntime(), [[0, 4]])).rejects.toThrow(/^block 0: its weights take 0\.2 MiB in one ONNX graph, over the 0\.1 MiB a graph can hold/)
    } finally {
      BlockRange.graphLimitBytes = saved
    }
    await model.source.close?.()
  })

  it('float16 weights (the shader-f16 path): half the projection bytes, logits within f16 rounding, the reference ids', async () => {
    const { model, tokenizer } = await openModel(`${dir}/stories260K.gguf`)
    const norm = new Float32Array(64).fill(1)
    const head = await readMatrix(model, 'token_embd.weight')
    const bytes = (opts: { halfWeights?: boolean }): number =>
      (ModelProto.decode(buildHeadGraph(model.config, norm, head, opts)).graph.initializer as Array<{ rawData: Uint8Array }>).reduce((n, t) => n + t.rawData.length, 0)
    expect(bytes({ halfWeights: true })).toBe(head.byteLength / 2 + norm.byteLength)
    expect(bytes({})).toBe(head.byteLength + norm.byteLength)
    const prompt = tokenizer.encode(reference.results[0].prompt)
    const logits: Float32Array[] = []
    for (const halfWeights of [false, true]) {
      // Plain attention ops, as in browsers. A buffer limit below the head's float32 bytes but above
      // its float16 bytes splits only the former.
      const pipeline = await LocalPipeline.load(model, { ...await loadRuntime({ halfWeights, fusedAttention: false }), maxBufferBytes: 100_000 }, [[0, 1], [2, 4]])
      logits.push(await pipeline.step(prompt))
      for (const ref of reference.results) {
        pipeline.reset()
        const { tokens } = await pipeline.generate(tokenizer.encode(ref.prompt), { maxTokens: 64, stopTokens: tokenizer.stopTokens })
        expect(tokens, `halfWeights ${String(halfWeights)}`).toEqual(ref.generated_tokens)
      }
      await pipeline.release()
    }
    const [f32, f16] = logits
    const scale = Math.max(...f32.map(Math.abs))
    const diff = Math.max(...f32.map((v, i) => Math.abs(v - f16[i])))
    // float16 keeps 11 significant bits: the logits move, but by well under 1% of their range.
    expect(diff).toBeGreaterThan(0)
    expect(diff / scale).toBeLessThan(0.01)
    await model.source.close?.()
  })

  it('a quantized projection splits along its output rows, blocks and scales intact', () => {
    const m = { bits: 8 as const, k: 64, n: 5, packed: Uint8Array.from({ length: 5 * 64 }, (_, i) => i % 251), scales: Float32Array.from({ length: 10 }, (_, i) => i) }
    const parts = splitLinear(m, [64, 5], 2 * 64 + 1) as QuantizedMatrix[]
    expect(parts.map(p => p.n)).toEqual([2, 2, 1])
    expect(parts.map(p => Array.from(p.scales))).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    expect(Array.from(parts[1].packed)).toEqual(Array.from(m.packed.subarray(128, 256)))
  })

  it('prefill in small chunks gives the same tokens as one call', async () => {
    const { model, tokenizer } = await openModel(`${dir}/stories260K.gguf`)
    const pipeline = await LocalPipeline.load(model, await loadRuntime())
    const ref = reference.results[0]
    const { tokens } = await pipeline.generate(tokenizer.encode(ref.prompt), { maxTokens: 64, prefillChunk: 2 })
    expect(tokens).toEqual(ref.generated_tokens)
    await model.source.close?.()
  })

  it('clawnet generate --json prints prompt tokens, tokens, text and timings', async () => {
    const ref = reference.results[1]
    const { stdout } = await promisify(execFile)('node', ['bin/clawnet.js', 'generate', '--model', `${dir}/stories260K.bin`, '--prompt', ref.prompt, '--max-tokens', '64', '--layers', '0-1,2-4', '--json'])
    const out = JSON.parse(stdout)
    expect(out.prompt_tokens).toEqual(ref.prompt_tokens_with_bos)
    expect(out.tokens).toEqual(ref.generated_tokens)
    expect(out.text).toBe(ref.text)
    expect(out.timings.decode_tokens_per_s).toBeGreaterThan(0)
  })

  it('clawnet generate fails with a clear message for a range outside the model', async () => {
    const run = promisify(execFile)('node', ['bin/clawnet.js', 'generate', '--model', `${dir}/stories260K.gguf`, '--prompt', 'x', '--layers', '0-2,3-7'])
    await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('outside the model') })
  })

  it('clawnet generate refuses a model over the memory budget before loading it', async () => {
    const run = promisify(execFile)('node', ['bin/clawnet.js', 'generate', '--model', `${dir}/stories260K.gguf`, '--prompt', 'x', '--memory-budget', '1'])
    await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/needs about \d+ MiB to load .* over the memory budget of 1 MiB/) })
  })
})
