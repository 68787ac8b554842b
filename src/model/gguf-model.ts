// Maps a GGUF header onto a ModelFile: architecture metadata to LlamaConfig, tokenizer arrays to a
// Vocabulary. Only Llama-family architectures are accepted; anything else is named in the error.
import type { ByteSource } from './source-http.ts'
import { readGgufHeader, type GgufFile, type GgufValue } from './gguf.ts'
import type { LlamaConfig, RopeStyle } from './config.ts'
import { expectDims, type ModelFile } from './model-file.ts'
import { tensorNames } from './config.ts'
import type { Vocabulary } from './tokenizer.ts'

const ROPE_STYLE: Record<string, RopeStyle> = { llama: 'interleaved', mistral: 'interleaved', qwen2: 'neox' }

export async function openGguf (source: ByteSource): Promise<ModelFile> {
  const file = await readGgufHeader(source)
  const config = configFromGguf(file, source.name)
  const model: ModelFile = { format: 'gguf', source, config, tensors: file.tensors, vocab: vocabFromGguf(file), chatTemplate: str(file.metadata.get('tokenizer.chat_template')) }
  checkShapes(model)
  return model
}

function str (v: GgufValue | undefined): string | undefined { return typeof v === 'string' ? v : undefined }

export function configFromGguf (file: GgufFile, what: string): LlamaConfig {
  const arch = str(file.metadata.get('general.architecture'))
  if (arch == null) throw new Error(`${what}: GGUF metadata general.architecture is missing`)
  const ropeStyle = ROPE_STYLE[arch]
  if (ropeStyle == null) throw new Error(`${what}: unsupported architecture '${arch}' (supported: ${Object.keys(ROPE_STYLE).join(', ')})`)
  const num = (key: string, fallback?: number): number => {
    const v = file.metadata.get(`${arch}.${key}`)
    if (v == null) {
      if (fallback != null) return fallback
      throw new Error(`${what}: GGUF metadata ${arch}.${key} is missing`)
    }
    if (typeof v === 'object') throw new Error(`${what}: GGUF metadata ${arch}.${key} is an array; per-layer values are not supported`)
    return Number(v)
  }
  const dim = num('embedding_length')
  const nHeads = num('attention.head_count')
  const embd = file.tensors.get(tensorNames.embedding)
  if (embd == null) throw new Error(`${what}: tensor ${tensorNames.embedding} is missing`)
  const vocabSize = num('vocab_size', embd.dims[1])
  const headDim = num('attention.key_length', dim / nHeads)
  const scalingType = str(file.metadata.get(`${arch}.rope.scaling.type`))
  if (scalingType != null && scalingType !== 'none' && scalingType !== 'linear') {
    throw new Error(`${what}: rope scaling type '${scalingType}' is not supported (supported: none, linear, and llama3 through rope_freqs.weight)`)
  }
  const config: LlamaConfig = {
    architecture: arch,
    dim,
    hiddenDim: num('feed_forward_length'),
    nLayers: num('block_count'),
    nHeads,
    nKvHeads: num('attention.head_count_kv', nHeads),
    headDim,
    vocabSize,
    contextLength: num('context_length', 2048),
    normEps: num('attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: num('rope.freq_base', 10000),
    ropeStyle,
    ropeLinearFactor: scalingType === 'linear' ? num('rope.scaling.factor', 1) : 1,
    tiedEmbeddings: !file.tensors.has(tensorNames.output),
    qkvBias: file.tensors.has(tensorNames.block(0).qBias)
  }
  if (num('rope.dimension_count', headDim) !== headDim) throw new Error(`${what}: partial rotary embeddings (rope.dimension_count ${num('rope.dimension_count')} < head size ${headDim}) are not supported`)
  if (nHeads % config.nKvHeads !== 0) throw new Error(`${what}: ${nHeads} query heads are not a multiple of ${config.nKvHeads} KV heads`)
  return config
}

export function vocabFromGguf (file: GgufFile): Vocabulary | undefined {
  const m = file.metadata
  const tokens = m.get('tokenizer.ggml.tokens')
  if (!Array.isArray(tokens)) return undefined
  const model = str(m.get('tokenizer.ggml.model'))
  if (model !== 'llama' && model !== 'gpt2') throw new Error(`tokenizer model '${model}' is not supported (supported: llama, gpt2)`)
  const opt = (k: string): number | undefined => m.get(k) == null ? undefined : Number(m.get(k))
  const stop = ['tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id'].map(opt).filter((x): x is number => x != null)
  return {
    tokens: tokens as string[],
    scores: m.get('tokenizer.ggml.scores') as ArrayLike<number> | undefined,
    types: m.get('tokenizer.ggml.token_type') as ArrayLike<number> | undefined,
    merges: m.get('tokenizer.ggml.merges') as string[] | undefined,
    bos: opt('tokenizer.ggml.bos_token_id'),
    eos: opt('tokenizer.ggml.eos_token_id'),
    stop,
    addBos: m.get('tokenizer.ggml.add_bos_token') as boolean | undefined ?? model === 'llama',
    addSpacePrefix: m.get('tokenizer.ggml.add_space_prefix') as boolean | undefined ?? true,
    pre: model === 'gpt2' ? (str(m.get('tokenizer.ggml.pre')) ?? 'gpt2') : undefined,
    kind: model === 'gpt2' ? 'bpe' : 'spm'
  }
}

/** Every tensor the model needs must exist with the shape the config implies, before any compute. */
export function checkShapes (model: ModelFile): void {
  const c = model.config
  const kvDim = c.nKvHeads * c.headDim
  const qDim = c.nHeads * c.headDim
  const must = (name: string, dims: number[]): void => {
    const ref = model.tensors.get(name)
    if (ref == null) throw new Error(`${model.source.name}: tensor ${name} is missing`)
    expectDims(ref, dims)
  }
  must(tensorNames.embedding, [c.dim, c.vocabSize])
  must(tensorNames.outputNorm, [c.dim])
  if (!c.tiedEmbeddings) must(tensorNames.output, [c.dim, c.vocabSize])
  for (let i = 0; i < c.nLayers; i++) {
    const b = tensorNames.block(i)
    must(b.attnNorm, [c.dim]); must(b.ffnNorm, [c.dim])
    must(b.q, [c.dim, qDim]); must(b.k, [c.dim, kvDim]); must(b.v, [c.dim, kvDim]); must(b.o, [qDim, c.dim])
    must(b.gate, [c.dim, c.hiddenDim]); must(b.up, [c.dim, c.hiddenDim]); must(b.down, [c.hiddenDim, c.dim])
    if (c.qkvBias) { must(b.qBias, [qDim]); must(b.kBias, [kvDim]); must(b.vBias, [kvDim]) }
  }
}
