// What loading a stage range costs, before loading it: weights are held as float32 (dequantized
// at load), the graph bytes exist once more while a session is created, and the KV cache grows
// to the context length.
import { tensorNames, type LlamaConfig } from '../model/config.ts'
import type { ModelFile } from '../model/model-file.ts'

export interface MemoryEstimate {
  /** float32 weights of the blocks and head, plus the embedding in its file encoding. */
  weightBytes: number
  kvCacheBytes: number
  /** While sessions are created the weights exist twice (graph bytes and session copy). */
  peakBytes: number
}

export function estimateMemory (model: ModelFile, ranges: Array<[number, number]> = [[0, model.config.nLayers - 1]], contextTokens = model.config.contextLength): MemoryEstimate {
  const c: LlamaConfig = model.config
  let blockBytes = 0
  let layers = 0
  for (const [a, b] of ranges) {
    for (let i = a; i <= b; i++) {
      layers++
      for (const name of Object.values(tensorNames.block(i))) blockBytes += (model.tensors.get(name)?.elements ?? 0) * 4
    }
  }
  const head = model.tensors.get(c.tiedEmbeddings ? tensorNames.embedding : tensorNames.output)
  const headBytes = (head?.elements ?? 0) * 4 + c.dim * 4
  const embeddingBytes = model.tensors.get(tensorNames.embedding)?.byteLength ?? 0
  const weightBytes = blockBytes + headBytes + embeddingBytes
  const kvCacheBytes = 2 * layers * contextTokens * c.nKvHeads * c.headDim * 4
  const largestStage = Math.max(headBytes, ...ranges.map(([a, b]) => blockBytes * (b - a + 1) / Math.max(layers, 1)))
  return { weightBytes, kvCacheBytes, peakBytes: weightBytes + kvCacheBytes + largestStage }
}

export function checkMemoryBudget (estimate: MemoryEstimate, budgetBytes: number, what: string): void {
  if (estimate.peakBytes > budgetBytes) {
    const mib = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MiB`
    throw new Error(`${what} needs about ${mib(estimate.peakBytes)} to load (weights ${mib(estimate.weightBytes)}, KV cache ${mib(estimate.kvCacheBytes)}), over the memory budget of ${mib(budgetBytes)}; load fewer layers or a smaller model`)
  }
}
