// What loading a stage range costs, before loading it: weights are held as float32 (dequantized
// at load), float16 with halfWeights, or, with packedMatMul, Q8_0/Q4_0 as MatMulNBits blocks;
// the graph bytes exist once more while a session is created, and the KV cache grows to the
// context length.
import { tensorNames, type LlamaConfig } from '../model/config.ts'
import type { ModelFile } from '../model/model-file.ts'
import { GgmlType } from '../model/ggml-types.ts'

/**
 * Most weight bytes one session's graph holds: an ONNX model is one protobuf (at most 2 GiB),
 * and onnxruntime-web copies it into a 4 GiB WebAssembly heap while it creates the session.
 * Larger block ranges run as several sessions.
 */
export const MAX_GRAPH_BYTES = 2 ** 30

export interface WeightEncoding { packedMatMul?: boolean, halfWeights?: boolean }

/** Bytes a tensor takes once loaded: float32 or float16, or packed MatMulNBits blocks + f32 scales. */
function loadedBytes (model: ModelFile, name: string, enc: WeightEncoding): number {
  const t = model.tensors.get(name)
  if (t == null) return 0
  const matrix = t.dims.length > 1
  if (enc.packedMatMul === true && matrix && t.type === GgmlType.Q8_0) return t.elements / 32 * (32 + 4)
  if (enc.packedMatMul === true && matrix && t.type === GgmlType.Q4_0) return t.elements / 32 * (16 + 4)
  return t.elements * (enc.halfWeights === true && matrix ? 2 : 4)
}

export interface MemoryEstimate {
  /** float32 weights of the blocks and head, plus the embedding in its file encoding. */
  weightBytes: number
  kvCacheBytes: number
  /** While a session is created its graph's weights exist twice (graph bytes and session copy). */
  peakBytes: number
}

/** Bytes block `i`'s weights take once loaded in the given encoding. */
export function blockBytes (model: ModelFile, i: number, enc: WeightEncoding): number {
  let n = 0
  for (const name of Object.values(tensorNames.block(i))) n += loadedBytes(model, name, enc)
  return n
}

/**
 * Cuts blocks first..last into runs whose weights stay within `maxBytes`, one session each (a
 * block larger than that runs alone).
 */
export function graphSegments (model: ModelFile, first: number, last: number, enc: WeightEncoding, maxBytes = MAX_GRAPH_BYTES): Array<{ first: number, last: number, bytes: number }> {
  const segments: Array<{ first: number, last: number, bytes: number }> = []
  for (let i = first; i <= last; i++) {
    const bytes = blockBytes(model, i, enc)
    const open = segments.at(-1)
    if (open != null && open.bytes + bytes <= maxBytes) {
      open.last = i
      open.bytes += bytes
    } else {
      segments.push({ first: i, last: i, bytes })
    }
  }
  return segments
}

export function estimateMemory (model: ModelFile, ranges: Array<[number, number]> = [[0, model.config.nLayers - 1]], contextTokens = model.config.contextLength, opts: WeightEncoding = {}): MemoryEstimate {
  const c: LlamaConfig = model.config
  const segments = ranges.flatMap(([a, b]) => graphSegments(model, a, b, opts))
  const layers = ranges.reduce((n, [a, b]) => n + b - a + 1, 0)
  const headBytes = loadedBytes(model, c.tiedEmbeddings ? tensorNames.embedding : tensorNames.output, opts) + c.dim * 4
  const embeddingBytes = model.tensors.get(tensorNames.embedding)?.byteLength ?? 0
  const weightBytes = segments.reduce((n, s) => n + s.bytes, 0) + headBytes + embeddingBytes
  const kvCacheBytes = 2 * layers * contextTokens * c.nKvHeads * c.headDim * 4
  // While a session is created its graph's weights exist twice: the largest graph counts twice.
  const largestGraph = Math.max(headBytes, ...segments.map(s => s.bytes))
  return { weightBytes, kvCacheBytes, peakBytes: weightBytes + kvCacheBytes + largestGraph }
}

export function checkMemoryBudget (estimate: MemoryEstimate, budgetBytes: number, what: string): void {
  if (estimate.peakBytes > budgetBytes) {
    const mib = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MiB`
    throw new Error(`${what} needs about ${mib(estimate.peakBytes)} to load (weights ${mib(estimate.weightBytes)}, KV cache ${mib(estimate.kvCacheBytes)}), over the memory budget of ${mib(budgetBytes)}; load fewer layers or a smaller model`)
  }
}
