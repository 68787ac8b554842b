// Everything a UI needs to run a model on this agent alone: open (header only, with progress),
// describe it, load it on the best backend, and chat with it.
import { openSource } from '../model/source.ts'
import type { ByteSource } from '../model/source-http.ts'
import { openModelSource, makeTokenizer } from '../model/open-model.ts'
import { readLlama2cTokenizer } from '../model/llama2c.ts'
import type { ModelFile } from '../model/model-file.ts'
import type { Tokenizer } from '../model/tokenizer.ts'
import { typeName } from '../model/ggml-types.ts'
import { encodeChat, type ChatMessage } from '../model/chat-template.ts'
import { loadRuntime } from './ort.ts'
import type { Backend } from './runtime.ts'
import { estimateMemory, type MemoryEstimate } from './memory.ts'
import { LocalPipeline, type GenerateResult } from './pipeline.ts'
import type { SamplerOptions } from './sampler.ts'

export interface ModelSummary {
  name: string
  format: string
  architecture: string
  fileBytes: number
  layers: number
  dim: number
  heads: string
  vocab: number
  context: number
  weightTypes: string[]
  memory: MemoryEstimate
  /** The same with float16 projections (WebGPU with shader-f16). */
  memoryHalf: MemoryEstimate
}

export interface OpenedModel { model: ModelFile, tokenizer: Tokenizer, summary: ModelSummary }

const isByteSource = (x: unknown): x is ByteSource => typeof (x as ByteSource)?.read === 'function' && typeof (x as ByteSource).size === 'number'

/** Opens a model from a path, URL, local file, or any byte source (e.g. a peer serving its bytes). */
export async function openLocalModel (location: string | Blob | ByteSource, tokenizerLocation?: string | Blob, onBytes?: (loaded: number) => void): Promise<OpenedModel> {
  const source = isByteSource(location) ? location : await openSource(location, onBytes)
  const model = await openModelSource(source).catch(async (err: unknown) => {
    // A running agent may be asked to open many bad files: each refused one must not keep its handle.
    if (source !== location) await source.close?.()
    throw err
  })
  let tokenizer: Tokenizer
  if (model.vocab != null) {
    tokenizer = makeTokenizer(model.vocab)
  } else {
    const tokLocation = tokenizerLocation ?? (typeof location === 'string' ? location.replace(/[^/]*$/, 'tokenizer.bin') : undefined)
    if (tokLocation == null || tokLocation === '') throw new Error(`${model.source.name} is a llama2.c checkpoint: choose its tokenizer file too`)
    const source: ByteSource = await openSource(tokLocation)
    try {
      tokenizer = makeTokenizer(await readLlama2cTokenizer(source, model.config.vocabSize))
    } finally {
      await source.close?.()
    }
  }
  const c = model.config
  const types = new Set([...model.tensors.values()].filter(t => t.dims.length > 1).map(t => typeName(t.type)))
  return {
    model,
    tokenizer,
    summary: {
      name: model.source.name,
      format: model.format,
      architecture: c.architecture,
      fileBytes: model.source.size,
      layers: c.nLayers,
      dim: c.dim,
      heads: `${c.nHeads} query / ${c.nKvHeads} KV`,
      vocab: c.vocabSize,
      context: c.contextLength,
      weightTypes: [...types],
      memory: estimateMemory(model),
      memoryHalf: estimateMemory(model, undefined, undefined, { halfWeights: true })
    }
  }
}

/** Bytes that loading all stages will read (for a progress bar). */
export function bytesToLoad (model: ModelFile): number {
  let total = 0
  for (const t of model.tensors.values()) total += t.byteLength
  return total
}

export class LocalChat {
  private constructor (readonly opened: OpenedModel, readonly pipeline: LocalPipeline, readonly backend: Backend, readonly halfWeights: boolean) {}

  /** `halfWeights` undefined: float16 where WebGPU offers shader-f16 (see RuntimeOptions). */
  static async load (opened: OpenedModel, backend?: Backend, halfWeights?: boolean): Promise<LocalChat> {
    const runtime = await loadRuntime({ backend, halfWeights })
    return new LocalChat(opened, await LocalPipeline.load(opened.model, runtime), runtime.backend, runtime.halfWeights === true)
  }

  /** How the blocks attend (see BlockRange.attention); every range of one runtime does the same. */
  get attention (): 'fused' | 'ops' {
    return this.pipeline.ranges[0].attention
  }

  promptTokens (messages: ChatMessage[]): number[] {
    return encodeChat(this.opened.model.chatTemplate, messages, this.opened.tokenizer)
  }

  async reply (messages: ChatMessage[], opts: SamplerOptions & { maxTokens: number, onText?: (text: string) => void }): Promise<GenerateResult & { prompt: number[], text: string }> {
    const prompt = this.promptTokens(messages)
    const decoder = this.opened.tokenizer.decoder()
    let text = ''
    this.pipeline.reset()
    const result = await this.pipeline.generate(prompt, {
      ...opts,
      stopTokens: this.opened.tokenizer.stopTokens,
      onToken: id => { text += decoder.push(id); opts.onText?.(text) }
    })
    text += decoder.flush()
    return { ...result, prompt, text }
  }

  async release (): Promise<void> { await this.pipeline.release() }
}
