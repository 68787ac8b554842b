// Random-weight Llama-family models of any shape, written as GGUF: fixtures for comparing the
// engine with llama.cpp, and benchmark models sized to make compute dominate. Weights are scaled
// so activations stay O(1) and the head is confident, keeping greedy choices far from ties.
import { tensorNames, type LlamaConfig } from './config.ts'
import type { GgmlType } from './ggml-types.ts'
import { buildLlamaGguf } from './llama-gguf.ts'
import { seededRandom } from '../engine/sampler.ts'
import type { Vocabulary } from './tokenizer.ts'

export function gaussian (seed: number): () => number {
  const random = seededRandom(seed)
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
}

/** Shape of every tensor the config implies, in ggml order. */
export function tensorShapes (c: LlamaConfig): Map<string, number[]> {
  const q = c.nHeads * c.headDim
  const kv = c.nKvHeads * c.headDim
  const shapes = new Map<string, number[]>([[tensorNames.embedding, [c.dim, c.vocabSize]], [tensorNames.outputNorm, [c.dim]]])
  if (!c.tiedEmbeddings) shapes.set(tensorNames.output, [c.dim, c.vocabSize])
  for (let i = 0; i < c.nLayers; i++) {
    const n = tensorNames.block(i)
    shapes.set(n.attnNorm, [c.dim]).set(n.ffnNorm, [c.dim])
    shapes.set(n.q, [c.dim, q]).set(n.k, [c.dim, kv]).set(n.v, [c.dim, kv]).set(n.o, [q, c.dim])
    shapes.set(n.gate, [c.dim, c.hiddenDim]).set(n.up, [c.dim, c.hiddenDim]).set(n.down, [c.hiddenDim, c.dim])
    if (c.qkvBias) shapes.set(n.qBias, [q]).set(n.kBias, [kv]).set(n.vBias, [kv])
  }
  return shapes
}

export function randomTensor (c: LlamaConfig, name: string, dims: number[], seed: number): Float32Array {
  const normal = gaussian(seed)
  const n = dims.reduce((a, b) => a * b, 1)
  const out = new Float32Array(n)
  if (dims.length === 1) {
    // Norm gains near 1; biases small.
    const isBias = name.endsWith('.bias')
    for (let i = 0; i < n; i++) out[i] = isBias ? 0.5 * normal() : 1 + 0.1 * normal()
    return out
  }
  // A tied table is both input and head: a large one makes every token predict itself, so the
  // block outputs (o, down) get a larger gain to outweigh the embedding in the residual stream.
  const isHead = name === tensorNames.output || (c.tiedEmbeddings && name === tensorNames.embedding)
  const isOutputProjection = /attn_output|ffn_down/.test(name)
  const gain = isHead ? 6 : isOutputProjection && c.tiedEmbeddings ? 8 : 1
  const std = name === tensorNames.embedding && !isHead ? 1 : gain / Math.sqrt(dims[0])
  for (let i = 0; i < n; i++) out[i] = std * normal()
  return out
}

export interface RandomModelOptions { seed?: number, type?: GgmlType, outputType?: GgmlType, tensorTypes?: Record<string, GgmlType>, name?: string, ropeFreqs?: Float32Array }

export async function randomLlamaGguf (config: LlamaConfig, vocab: Vocabulary, opts: RandomModelOptions = {}): Promise<Uint8Array> {
  const shapes = tensorShapes(config)
  const names = [...shapes.keys()]
  return await buildLlamaGguf(config, vocab, async name => randomTensor(config, name, shapes.get(name) ?? [], (opts.seed ?? 1) * 1000 + names.indexOf(name)), {
    type: opts.type, outputType: opts.outputType, tensorTypes: opts.tensorTypes, name: opts.name ?? 'random llama', ropeFreqs: opts.ropeFreqs
  })
}
