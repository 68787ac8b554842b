import { f16ToF32, f32ToF16 } from '../model/ggml-types.ts'

/**
 * How hidden states travel between hops. f32 is exact; f16 halves the bytes at ~1e-3 relative
 * error; q8 (one f32 scale per token, then a signed byte per value: value = scale × q) quarters
 * them at up to 1/254 of each token's largest value, for long prefills over slow uplinks.
 */
export type WireDType = 'f32' | 'f16' | 'q8'

export const WIRE_DTYPES: readonly WireDType[] = ['f32', 'f16', 'q8']

/** Bytes one token's hidden state of `dim` values takes on the wire. */
export function rowBytes (dtype: WireDType, dim: number): number {
  return dtype === 'f32' ? dim * 4 : dtype === 'f16' ? dim * 2 : 4 + dim
}

/** Little-endian bytes of `data` (whole tokens of `dim` values) in the wire dtype. */
export function encodeTensor (data: Float32Array, dtype: WireDType, dim: number): Uint8Array {
  const rows = data.length / dim
  const out = new Uint8Array(rows * rowBytes(dtype, dim))
  const view = new DataView(out.buffer)
  if (dtype === 'f32') for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true)
  else if (dtype === 'f16') for (let i = 0; i < data.length; i++) view.setUint16(i * 2, f32ToF16(data[i]), true)
  else for (let r = 0; r < rows; r++) encodeQ8Row(data.subarray(r * dim, (r + 1) * dim), view, r * (4 + dim))
  return out
}

function encodeQ8Row (row: Float32Array, view: DataView, at: number): void {
  let max = 0
  for (const v of row) max = Math.max(max, Math.abs(v))
  const scale = max / 127
  view.setFloat32(at, scale, true)
  for (let i = 0; i < row.length; i++) view.setInt8(at + 4 + i, scale === 0 ? 0 : Math.round(row[i] / scale))
}

export function decodeTensor (bytes: Uint8Array, dtype: WireDType, tokens: number, dim: number): Float32Array {
  const expected = tokens * rowBytes(dtype, dim)
  if (bytes.byteLength !== expected) {
    throw new Error(`tensor frame has ${bytes.byteLength} bytes, expected ${tokens} × ${dim} ${dtype} values (${expected} bytes)`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Float32Array(tokens * dim)
  if (dtype === 'f32') for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
  else if (dtype === 'f16') for (let i = 0; i < out.length; i++) out[i] = f16ToF32(view.getUint16(i * 2, true))
  else {
    for (let r = 0; r < tokens; r++) {
      const at = r * (4 + dim)
      const scale = view.getFloat32(at, true)
      for (let i = 0; i < dim; i++) out[r * dim + i] = scale * view.getInt8(at + 4 + i)
    }
  }
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw new Error(`tensor frame holds a non-finite value at index ${i}`)
  }
  return out
}
