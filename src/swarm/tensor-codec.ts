/** How hidden states travel between hops. f32 is exact; f16 halves the bytes at ~1e-3 relative error. */
export type WireDType = 'f32' | 'f16'

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** IEEE 754 half from single, rounding to nearest even; overflow becomes ±Inf. */
export function toHalf (value: number): number {
  f32[0] = value
  const x = u32[0]
  const sign = (x >>> 16) & 0x8000
  const exp = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  const e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    mant |= 0x800000
    const shift = 14 - e
    let half = mant >>> shift
    const rest = mant & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++
    return sign | half
  }
  let half = sign | (e << 10) | (mant >>> 13)
  const rest = mant & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++
  return half
}

export function fromHalf (h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : Number.NaN
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

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
  for (let i = 0; i < data.length; i++) view.setUint16(i * 2, toHalf(data[i]), true)
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
  else for (let i = 0; i < expectedValues; i++) out[i] = fromHalf(view.getUint16(i * 2, true))
  for (let i = 0; i < expectedValues; i++) {
    if (!Number.isFinite(out[i])) throw new Error(`tensor frame holds a non-finite value at index ${i}`)
  }
  return out
}
