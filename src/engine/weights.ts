// Loading a stage's weights: dequantize to float32 (measured faster than quantized kernels on the
// CPU/WASM paths) and transpose matrices from ggml's [out][in] rows to MatMul's [in, out].
import { readTensor, tensorRef, type ModelFile } from '../model/model-file.ts'
import { tensorNames } from '../model/config.ts'
import type { BlockWeights } from './llama-graph.ts'

export function transpose (data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length)
  const tile = 32
  for (let r0 = 0; r0 < rows; r0 += tile) {
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const rEnd = Math.min(rows, r0 + tile)
      const cEnd = Math.min(cols, c0 + tile)
      for (let r = r0; r < rEnd; r++) {
        for (let c = c0; c < cEnd; c++) out[c * rows + r] = data[r * cols + c]
      }
    }
  }
  return out
}

/** A ggml matrix (dims [in, out]) as a float32 [in, out] row-major MatMul weight. */
export async function readMatrix (model: ModelFile, name: string): Promise<Float32Array> {
  const ref = tensorRef(model, name)
  const [inDim, outDim] = ref.dims
  return transpose(await readTensor(model, name), outDim, inDim)
}

export async function readBlockWeights (model: ModelFile, layer: number): Promise<BlockWeights> {
  const n = tensorNames.block(layer)
  const w: BlockWeights = {
    attnNorm: await readTensor(model, n.attnNorm),
    q: await readMatrix(model, n.q),
    k: await readMatrix(model, n.k),
    v: await readMatrix(model, n.v),
    o: await readMatrix(model, n.o),
    ffnNorm: await readTensor(model, n.ffnNorm),
    gate: await readMatrix(model, n.gate),
    up: await readMatrix(model, n.up),
    down: await readMatrix(model, n.down)
  }
  if (model.config.qkvBias) {
    w.qBias = await readTensor(model, n.qBias)
    w.kBias = await readTensor(model, n.kBias)
    w.vBias = await readTensor(model, n.vBias)
  }
  return w
}
