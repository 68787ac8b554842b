// Writes a Llama-family model as a GGUF file llama.cpp can load: architecture metadata from a
// LlamaConfig, tokenizer arrays from a Vocabulary, 2-D weights in the chosen ggml type and
// 1-D tensors (norms, biases) in F32, as llama.cpp's own converter does.
import { tensorNames, type LlamaConfig } from './config.ts'
import { GgmlType, typeInfo } from './ggml-types.ts'
import { meta, writeGguf, type MetaValue, type TensorToWrite } from './gguf-writer.ts'
import { quantize } from './quantize.ts'
import type { Vocabulary } from './tokenizer.ts'

const blockElements = (type: GgmlType): number => typeInfo(type, 'weights').blockElements

export interface LlamaGgufOptions {
  name?: string
  /** Type of the 2-D weights (projections, embedding). */
  type?: GgmlType
  /** Type of output.weight; defaults to `type`. */
  outputType?: GgmlType
  /** Per-tensor types that override `type` (mixed files, as llama.cpp's Q4_K_M keeps attn_v higher). */
  tensorTypes?: Record<string, GgmlType>
  chatTemplate?: string
  /** Llama 3 rope scaling: a divisor per rotary frequency, written as rope_freqs.weight as llama.cpp's converter does. */
  ropeFreqs?: Float32Array
}

/** `read(name)` returns a tensor's float32 values in ggml row-major order. */
export async function buildLlamaGguf (config: LlamaConfig, vocab: Vocabulary, read: (name: string) => Promise<Float32Array>, opts: LlamaGgufOptions = {}): Promise<Uint8Array> {
  const c = config
  const a = c.architecture
  const metadata: Record<string, MetaValue> = {
    'general.architecture': meta.str(a),
    'general.name': meta.str(opts.name ?? 'clawnet model'),
    'general.alignment': meta.u32(32),
    [`${a}.vocab_size`]: meta.u32(c.vocabSize),
    [`${a}.context_length`]: meta.u32(c.contextLength),
    [`${a}.embedding_length`]: meta.u32(c.dim),
    [`${a}.block_count`]: meta.u32(c.nLayers),
    [`${a}.feed_forward_length`]: meta.u32(c.hiddenDim),
    [`${a}.attention.head_count`]: meta.u32(c.nHeads),
    [`${a}.attention.head_count_kv`]: meta.u32(c.nKvHeads),
    [`${a}.rope.dimension_count`]: meta.u32(c.headDim),
    [`${a}.rope.freq_base`]: meta.f32(c.ropeTheta),
    [`${a}.attention.layer_norm_rms_epsilon`]: meta.f32(c.normEps),
    ...vocabMetadata(vocab)
  }
  if (c.headDim !== c.dim / c.nHeads) metadata[`${a}.attention.key_length`] = metadata[`${a}.attention.value_length`] = meta.u32(c.headDim)
  if (opts.chatTemplate != null) metadata['tokenizer.chat_template'] = meta.str(opts.chatTemplate)
  if (c.ropeLinearFactor !== 1) {
    metadata[`${a}.rope.scaling.type`] = meta.str('linear')
    metadata[`${a}.rope.scaling.factor`] = meta.f32(c.ropeLinearFactor)
  }

  const type = opts.type ?? GgmlType.F32
  const tensors: TensorToWrite[] = []
  // Rows that are not whole blocks of the chosen type (e.g. stories260K's 172-wide FFN) stay
  // F32, as llama.cpp's quantizer falls back for such tensors.
  const add = async (name: string, dims: number[], requested: GgmlType): Promise<void> => {
    const wanted = opts.tensorTypes?.[name] ?? requested
    const t = dims[0] % blockElements(wanted) === 0 ? wanted : GgmlType.F32
    tensors.push({ name, dims, type: t, data: quantize(t, await read(name)) })
  }
  const qDim = c.nHeads * c.headDim
  const kvDim = c.nKvHeads * c.headDim
  await add(tensorNames.embedding, [c.dim, c.vocabSize], type)
  if (opts.ropeFreqs != null) {
    if (opts.ropeFreqs.length !== c.headDim / 2) throw new Error(`rope_freqs needs ${c.headDim / 2} values (head size / 2), got ${opts.ropeFreqs.length}`)
    tensors.push({ name: tensorNames.ropeFreqs, dims: [c.headDim / 2], type: GgmlType.F32, data: quantize(GgmlType.F32, opts.ropeFreqs) })
  }
  for (let i = 0; i < c.nLayers; i++) {
    const n = tensorNames.block(i)
    await add(n.attnNorm, [c.dim], GgmlType.F32)
    await add(n.q, [c.dim, qDim], type)
    await add(n.k, [c.dim, kvDim], type)
    await add(n.v, [c.dim, kvDim], type)
    if (c.qkvBias) {
      await add(n.qBias, [qDim], GgmlType.F32)
      await add(n.kBias, [kvDim], GgmlType.F32)
      await add(n.vBias, [kvDim], GgmlType.F32)
    }
    await add(n.o, [qDim, c.dim], type)
    await add(n.ffnNorm, [c.dim], GgmlType.F32)
    await add(n.gate, [c.dim, c.hiddenDim], type)
    await add(n.down, [c.hiddenDim, c.dim], type)
    await add(n.up, [c.dim, c.hiddenDim], type)
  }
  await add(tensorNames.outputNorm, [c.dim], GgmlType.F32)
  if (!c.tiedEmbeddings) await add(tensorNames.output, [c.dim, c.vocabSize], opts.outputType ?? type)
  return writeGguf(metadata, tensors)
}

function vocabMetadata (v: Vocabulary): Record<string, MetaValue> {
  const m: Record<string, MetaValue> = {
    'tokenizer.ggml.model': meta.str(v.kind === 'bpe' ? 'gpt2' : 'llama'),
    'tokenizer.ggml.tokens': meta.strings(v.tokens),
    'tokenizer.ggml.add_bos_token': meta.bool(v.addBos)
  }
  if (v.scores != null) m['tokenizer.ggml.scores'] = meta.f32s(v.scores)
  if (v.types != null) m['tokenizer.ggml.token_type'] = meta.i32s(v.types)
  if (v.merges != null) m['tokenizer.ggml.merges'] = meta.strings(v.merges)
  if (v.pre != null) m['tokenizer.ggml.pre'] = meta.str(v.pre)
  if (v.bos != null) m['tokenizer.ggml.bos_token_id'] = meta.u32(v.bos)
  if (v.eos != null) m['tokenizer.ggml.eos_token_id'] = meta.u32(v.eos)
  if (v.kind === 'spm') {
    m['tokenizer.ggml.unknown_token_id'] = meta.u32(0)
    m['tokenizer.ggml.add_space_prefix'] = meta.bool(v.addSpacePrefix ?? true)
  }
  return m
}
