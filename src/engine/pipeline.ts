// Runs a whole model in one process as the caller-side pipeline of Petals: the caller holds the
// embedding and the head, and hands hidden states to one or more block ranges in turn. With
// several ranges this proves that split execution gives the same tokens as one range.
import type { ModelFile } from '../model/model-file.ts'
import type { Runtime } from './runtime.ts'
import { checkMemoryBudget, estimateMemory } from './memory.ts'
import { Sampler, type SamplerOptions } from './sampler.ts'
import { BlockRange, Embedding, Head } from './stages.ts'

export interface GenerateOptions extends SamplerOptions {
  maxTokens: number
  stopTokens?: Set<number>
  /** Prompt tokens per forward call; keeps per-call work (and backend limits) bounded. */
  prefillChunk?: number
  onToken?: (id: number) => void
}

export interface GenerateResult {
  tokens: number[]
  timings: { prefill_ms: number, decode_ms: number, prefill_tokens_per_s: number, decode_tokens_per_s: number }
}

/** Parses "0-1,2-4" into inclusive block ranges that must cover 0..nLayers-1 in order. */
export function parseLayerRanges (spec: string | undefined, nLayers: number): Array<[number, number]> {
  if (spec == null || spec === '') return [[0, nLayers - 1]]
  const ranges = spec.split(',').map(part => {
    const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(part) ?? /^\s*(\d+)()\s*$/.exec(part)
    if (m == null) throw new Error(`bad layer range '${part}': expected A-B (0-based, inclusive)`)
    const a = Number(m[1])
    return [a, m[2] === '' ? a : Number(m[2])] as [number, number]
  })
  let next = 0
  for (const [a, b] of ranges) {
    if (b >= nLayers) throw new Error(`layer range ${a}-${b} is outside the model's blocks 0-${nLayers - 1}`)
    if (a !== next || b < a) throw new Error(`layer ranges '${spec}' must be contiguous and cover blocks 0-${nLayers - 1} in order`)
    next = b + 1
  }
  if (next !== nLayers) throw new Error(`layer ranges '${spec}' stop at block ${next - 1}; the model has blocks 0-${nLayers - 1}`)
  return ranges
}

export class LocalPipeline {
  private constructor (readonly embedding: Embedding, readonly ranges: BlockRange[], readonly head: Head) {}

  static async load (model: ModelFile, runtime: Runtime, ranges: Array<[number, number]> = [[0, model.config.nLayers - 1]], opts: { memoryBudget?: number } = {}): Promise<LocalPipeline> {
    if (opts.memoryBudget != null) checkMemoryBudget(estimateMemory(model, ranges, model.config.contextLength, { packedMatMul: runtime.packedMatMul, halfWeights: runtime.halfWeights }), opts.memoryBudget, model.source.name)
    const loaded: BlockRange[] = []
    for (const [a, b] of ranges) loaded.push(await BlockRange.load(model, a, b, runtime))
    return new LocalPipeline(await Embedding.load(model), loaded, await Head.load(model, runtime))
  }

  reset (): void { for (const r of this.ranges) r.reset() }

  /** Feeds tokens through every range; returns the logits of the last one. */
  async step (ids: number[]): Promise<Float32Array> {
    let hidden = this.embedding.embed(ids)
    for (const range of this.ranges) hidden = await range.forward(hidden, ids.length)
    const dim = this.embedding.config.dim
    return await this.head.logits(hidden.subarray((ids.length - 1) * dim), 1)
  }

  async generate (prompt: number[], opts: GenerateOptions): Promise<GenerateResult> {
    if (prompt.length === 0) throw new Error('the prompt has no tokens')
    const sampler = new Sampler(opts)
    const chunk = opts.prefillChunk ?? 256
    const t0 = performance.now()
    let logits!: Float32Array
    for (let i = 0; i < prompt.length; i += chunk) logits = await this.step(prompt.slice(i, i + chunk))
    const t1 = performance.now()
    const history = [...prompt]
    const tokens: number[] = []
    while (tokens.length < opts.maxTokens) {
      const id = sampler.sample(logits, history)
      tokens.push(id)
      history.push(id)
      opts.onToken?.(id)
      if (opts.stopTokens?.has(id) === true || tokens.length >= opts.maxTokens) break
      logits = await this.step([id])
    }
    const t2 = performance.now()
    const decodeSteps = Math.max(tokens.length - 1, 0)
    return {
      tokens,
      timings: {
        prefill_ms: t1 - t0,
        decode_ms: t2 - t1,
        prefill_tokens_per_s: prompt.length / ((t1 - t0) / 1000),
        decode_tokens_per_s: decodeSteps / ((t2 - t1) / 1000)
      }
    }
  }

  async release (): Promise<void> {
    for (const r of this.ranges) await r.release()
    await this.head.release()
  }
}
