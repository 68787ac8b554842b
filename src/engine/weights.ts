// Loading a stage's weights: dequantize to float32 (measured faster than quantized kernels on the
// CPU/WASM paths) and transpose matrices from ggml's [out][in] rows to MatMul's [in, out].
import { readTensor, tensorRef, type ModelFile } from '../model/model-file.ts'
import { tensorNames } from '../model/config.ts'
import { f16ToF32, GgmlType } from '../model/ggml-types.ts'
import type { BlockWeights, Linear, QuantizedMatrix } from './llama-graph.ts'

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

/**
 * Q8_0 and Q4_0 rows are MatMulNBits blocks as they are (32 values, one scale, zero point
 * 2^(bits-1)): only the nibble order of Q4_0 and the sign offset of Q8_0 change. Kept packed,
 * the CPU reads 4-8x fewer weight bytes per token than with dequantized float32.
 */
export async function readPackedMatrix (model: ModelFile, name: string): Promise<QuantizedMatrix | undefined> {
  const ref = tensorRef(model, name)
  if (ref.type !== GgmlType.Q8_0 && ref.type !== GgmlType.Q4_0) return undefined
  const [k, n] = ref.dims
  const raw = await model.source.read(ref.offset, ref.byteLength)
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  const blocks = (k / 32) * n
  const bits = ref.type === GgmlType.Q8_0 ? 8 : 4
  const blockBytes = bits === 8 ? 34 : 18
  const packed = new Uint8Array(blocks * 4 * bits)
  const scales = new Float32Array(blocks)
  for (let b = 0; b < blocks; b++) {
    const src = b * blockBytes
    scales[b] = f16ToF32(view.getUint16(src, true))
    if (bits === 8) {
      for (let j = 0; j < 32; j++) packed[b * 32 + j] = (raw[src + 2 + j] + 128) & 0xff
    } else {
      for (let j = 0; j < 16; j++) {
        const lo = (i: number): number => i < 16 ? raw[src + 2 + i] & 0x0f : raw[src + 2 + i - 16] >> 4
        packed[b * 16 + j] = lo(2 * j) | (lo(2 * j + 1) << 4)
      }
    }
  }
  return { bits, k, n, packed, scales }
}

async function readLinear (model: ModelFile, name: string, packed: boolean): Promise<Linear> {
  return (packed ? await readPackedMatrix(model, name) : undefined) ?? await readMatrix(model, name)
}

export { readLinear }

export async function readBlockWeights (model: ModelFile, layer: number, packed = false): Promise<BlockWeights> {
  const n = tensorNames.block(layer)
  const w: BlockWeights = {
    attnNorm: await readTensor(model, n.attnNorm),
    q: await readLinear(model, n.q, packed),
    k: await readLinear(model, n.k, packed),
    v: await readLinear(model, n.v, packed),
    o: await readLinear(model, n.o, packed),
    ffnNorm: await readTensor(model, n.ffnNorm),
    gate: await readLinear(model, n.gate, packed),
    up: await readLinear(model, n.up, packed),
    down: await readLinear(model, n.down, packed)
  }
  if (model.config.qkvBias) {
    w.qBias = await readTensor(model, n.qBias)
    w.kBias = await readTensor(model, n.kBias)
    w.vBias = await readTensor(model, n.vBias)
  }
  return w
}
