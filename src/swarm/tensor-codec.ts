import { f16ToF32, f32ToF16 } from '../model/ggml-types.ts'

/** How hidden states travel between hops. f32 is exact; f16 halves the bytes at ~1e-3 relative error. */
export type WireDType = 'f32' | 'f16'

/** Little-endian bytes of a hidden state in the wire dtype. */
export function encodeTensor (data: Float32Array, dtype: WireDType): Uint8Array {
  if (dtype === 'f32') {
    const out = new Uint8Array(data.byteLength)
    const view = new DataView(out.buffer)
    for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true)
    return out
  }
  const out = new Uint8Array(data.length * 2)
  const view = new DataView(out.buffer)
  for (let i = 0; i < data.length; i++) view.setUint16(i * 2, f32ToF16(data[i]), true)
  return out
}

export function decodeTensor (bytes: Uint8Array, dtype: WireDType, expectedValues: number): Float32Array {
  const size = dtype === 'f32' ? 4 : 2
  if (bytes.byteLength !== expectedValues * size) {
    throw new Error(`tensor frame has ${bytes.byteLength} bytes, expected ${expectedValues} ${dtype} values (${expectedValues * size} bytes)`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Float32Array(expectedValues)
  if (dtype === 'f32') for (let i = 0; i < expectedValues; i++) out[i] = view.getFloat32(i * 4, true)
  else for (let i = 0; i < expectedValues; i++) out[i] = f16ToF32(view.getUint16(i * 2, true))
  for (let i = 0; i < expectedValues; i++) {
    if (!Number.isFinite(out[i])) throw new Error(`tensor frame holds a non-finite value at index ${i}`)
  }
  return out
}
