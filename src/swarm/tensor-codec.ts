import { f16BytesToF32, f32ToF16Bytes } from '../model/ggml-types.ts'

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

/**
 * Little-endian bytes of `data` (whole tokens of `dim` values) in the wire dtype. Values are
 * copied as bytes, not through a DataView: like the model loader, this takes the host to be
 * little-endian, as every platform with WebGPU or WASM is.
 */
export function encodeTensor (data: Float32Array, dtype: WireDType, dim: number): Uint8Array {
  const rows = data.length / dim
  const out = new Uint8Array(rows * rowBytes(dtype, dim))
  if (dtype === 'f32') out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  else if (dtype === 'f16') f32ToF16Bytes(data, out)
  else {
    const view = new DataView(out.buffer)
    for (let r = 0; r < rows; r++) encodeQ8Row(data.subarray(r * dim, (r + 1) * dim), out, view, r * (4 + dim))
  }
  return out
}

/** One token at byte `at` of `out` (`view` over the same bytes, for its scale). */
function encodeQ8Row (row: Float32Array, out: Uint8Array, view: DataView, at: number): void {
  let max = 0
  for (const v of row) max = Math.max(max, Math.abs(v))
  const scale = max / 127
  view.setFloat32(at, scale, true)
  const q = new Int8Array(out.buffer, at + 4, row.length)
  if (scale !== 0) for (let i = 0; i < row.length; i++) q[i] = Math.round(row[i] / scale)
}

export function decodeTensor (bytes: Uint8Array, dtype: WireDType, tokens: number, dim: number): Float32Array {
  const expected = tokens * rowBytes(dtype, dim)
  if (bytes.byteLength !== expected) {
    throw new Error(`tensor frame has ${bytes.byteLength} bytes, expected ${tokens} × ${dim} ${dtype} values (${expected} bytes)`)
  }
  const out = new Float32Array(tokens * dim)
  if (dtype === 'f32') new Uint8Array(out.buffer).set(bytes)
  else if (dtype === 'f16') f16BytesToF32(bytes, out)
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let r = 0; r < tokens; r++) {
      const at = r * (4 + dim)
      const scale = view.getFloat32(at, true)
      const q = new Int8Array(bytes.buffer, bytes.byteOffset + at + 4, dim)
      for (let i = 0; i < dim; i++) out[r * dim + i] = scale * q[i]
    }
  }
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) throw new Error(`tensor frame holds a non-finite value at index ${i}`)
  }
  return out
}
