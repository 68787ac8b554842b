// llama2.c checkpoints (legacy format): a 7-int32 header, then every weight as float32 in a fixed
// order. Each weight becomes a TensorRef with its file offset, named as in GGUF, so the rest of
// the engine cannot tell the formats apart. Its tokenizer file (tok*.bin) is a separate file.
import type { ByteSource } from './source-http.ts'
import { GgmlType } from './ggml-types.ts'
import { tensorNames, type LlamaConfig } from './config.ts'
import type { ModelFile, TensorRef } from './model-file.ts'
import { TokenType, type Vocabulary } from './tokenizer.ts'

const HEADER_BYTES = 28

/** The file's header is not one of a llama2.c checkpoint (which has no magic to check first). */
export class NotLlama2c extends Error {}

export async function openLlama2c (source: ByteSource): Promise<ModelFile> {
  if (source.size < HEADER_BYTES) throw new NotLlama2c(`${source.name}: ${source.size} bytes is too short for a llama2.c header (${HEADER_BYTES} bytes)`)
  const h = new DataView((await source.read(0, HEADER_BYTES)).buffer)
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = Array.from({ length: 7 }, (_, i) => h.getInt32(4 * i, true))
  const vocabSize = Math.abs(rawVocab)
  const sane = [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen].every(v => v > 0 && v < 1 << 20) && dim % nHeads === 0 && nHeads % nKvHeads === 0
  if (!sane) throw new NotLlama2c(`${source.name}: not a llama2.c checkpoint (header dim=${dim} hidden=${hiddenDim} layers=${nLayers} heads=${nHeads} kv_heads=${nKvHeads} vocab=${rawVocab} seq_len=${seqLen})`)
  const headDim = dim / nHeads
  const kvDim = nKvHeads * headDim
  const tensors = new Map<string, TensorRef>()
  let offset = HEADER_BYTES
  const take = (name: string, dims: number[]): void => {
    const elements = dims.reduce((a, b) => a * b, 1)
    tensors.set(name, { name, dims, type: GgmlType.F32, offset, byteLength: elements * 4, elements })
    offset += elements * 4
  }
  // Weights are stored per kind for all layers at once: layer i of a kind is a slice of it.
  const perLayer = (kind: keyof ReturnType<typeof tensorNames.block>, dims: number[]): void => {
    for (let i = 0; i < nLayers; i++) take(tensorNames.block(i)[kind], dims)
  }
  take(tensorNames.embedding, [dim, vocabSize])
  perLayer('attnNorm', [dim])
  perLayer('q', [dim, dim])
  perLayer('k', [dim, kvDim])
  perLayer('v', [dim, kvDim])
  perLayer('o', [dim, dim])
  perLayer('ffnNorm', [dim])
  perLayer('gate', [dim, hiddenDim])
  perLayer('down', [hiddenDim, dim])
  perLayer('up', [dim, hiddenDim])
  take(tensorNames.outputNorm, [dim])
  offset += seqLen * headDim * 4 // freq_cis_real + freq_cis_imag: recomputed from theta instead
  if (rawVocab < 0) take(tensorNames.output, [dim, vocabSize])
  if (offset > source.size) throw new Error(`${source.name}: llama2.c checkpoint truncated: its header implies ${offset} bytes, the file has ${source.size}`)
  const config: LlamaConfig = {
    architecture: 'llama', dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize,
    contextLength: seqLen, normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'interleaved', ropeLinearFactor: 1,
    tiedEmbeddings: rawVocab > 0, qkvBias: false
  }
  return { format: 'llama2c', source, config, tensors }
}

/** llama2.c tokenizer file: int32 max token length, then per token float32 score, int32 length, bytes. */
export async function readLlama2cTokenizer (source: ByteSource, vocabSize: number): Promise<Vocabulary> {
  const bytes = await source.read(0, source.size)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const tokens: string[] = []
  const scores = new Float32Array(vocabSize)
  const types = new Int32Array(vocabSize)
  const utf8 = new TextDecoder()
  let at = 4
  for (let i = 0; i < vocabSize; i++) {
    if (at + 8 > bytes.length) throw new Error(`${source.name}: tokenizer truncated at token ${i} (offset ${at}); the model has ${vocabSize} tokens`)
    scores[i] = view.getFloat32(at, true)
    const len = view.getInt32(at + 4, true)
    if (len < 0 || at + 8 + len > bytes.length) throw new Error(`${source.name}: token ${i} at offset ${at} has a bad length ${len}`)
    // llama2.c writes spaces as ' '; the SentencePiece tokenizer works on '▁' as GGUF files do.
    const text = utf8.decode(bytes.subarray(at + 8, at + 8 + len)).replaceAll(' ', '\u2581')
    tokens.push(text)
    types[i] = i === 0 ? TokenType.UNKNOWN : i <= 2 ? TokenType.CONTROL : /^<0x[0-9A-F]{2}>$/.test(text) ? TokenType.BYTE : TokenType.NORMAL
    at += 8 + len
  }
  return { kind: 'spm', tokens, scores, types, bos: 1, eos: 2, addBos: true, addSpacePrefix: true }
}
