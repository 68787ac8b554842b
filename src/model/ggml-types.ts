// ggml tensor types: block geometry, and dequantization to float32 following ggml's reference
// (ggml-quants.c) layouts, so a tensor read from a GGUF file has the values llama.cpp sees.

export enum GgmlType { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30 }

interface TypeInfo { name: string, blockElements: number, blockBytes: number, dequantize?: (src: Uint8Array, dst: Float32Array) => void }

const QK_K = 256

export function f16ToF32 (h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

const f32Scratch = new Float32Array(1)
const u32Scratch = new Uint32Array(f32Scratch.buffer)
/** Round-to-nearest-even float32 -> float16 bits, as ggml's GGML_FP32_TO_FP16. */
export function f32ToF16 (value: number): number {
  f32Scratch[0] = value
  return f32BitsToF16(u32Scratch[0])
}

/** f32ToF16 of a float32 given by its bits. */
function f32BitsToF16 (x: number): number {
  const sign = (x >>> 16) & 0x8000
  const exp = ((x >>> 23) & 0xff) - 127 + 15
  let mant = x & 0x7fffff
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  if (exp >= 31) return sign | 0x7c00
  if (exp <= 0) {
    if (exp < -10) return sign
    mant |= 0x800000
    const shift = 14 - exp
    let half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    if (rem > mid || (rem === mid && (half & 1) === 1)) half++
    return sign | half
  }
  let half = (exp << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++
  return sign | half
}

// The bulk conversions below work on bits rather than through DataView and Math: hidden states
// cross every hop in f16 (a long prefill is millions of values) and F16 tensors load through
// them. Like dequantF32 they take the host to be little-endian, as every WebGPU/WASM platform is.

/** float16 values (little-endian bytes, any alignment) into `dst`. */
export function f16BytesToF32 (src: Uint8Array, dst: Float32Array): void {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length)
  for (let i = 0; i < dst.length; i++) {
    const h = src[2 * i] | (src[2 * i + 1] << 8)
    const sign = (h & 0x8000) << 16
    const exp = (h >> 10) & 0x1f
    const frac = h & 0x3ff
    if (exp === 0) dst[i] = (sign !== 0 ? -frac : frac) * 2 ** -24
    else if (exp === 31) bits[i] = sign | 0x7f800000 | (frac << 13)
    else bits[i] = sign | ((exp + 112) << 23) | (frac << 13)
  }
}

/** `src` rounded to float16 (as f32ToF16), into `dst` as little-endian bytes. */
export function f32ToF16Bytes (src: Float32Array, dst: Uint8Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length)
  for (let i = 0; i < src.length; i++) {
    const h = f32BitsToF16(bits[i])
    dst[2 * i] = h & 0xff
    dst[2 * i + 1] = h >>> 8
  }
}

function dequantF32 (src: Uint8Array, dst: Float32Array): void {
  new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(src.subarray(0, dst.byteLength))
}

function dequantBF16 (src: Uint8Array, dst: Float32Array): void {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length)
  for (let i = 0; i < dst.length; i++) bits[i] = view.getUint16(2 * i, true) << 16
}

function dequantQ8_0 (src: Uint8Array, dst: Float32Array): void {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  for (let b = 0, o = 0; o < dst.length; b += 34, o += 32) {
    const d = f16ToF32(view.getUint16(b, true))
    for (let j = 0; j < 32; j++) dst[o + j] = view.getInt8(b + 2 + j) * d
  }
}

function dequantQ4_0 (src: Uint8Array, dst: Float32Array): void {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  for (let b = 0, o = 0; o < dst.length; b += 18, o += 32) {
    const d = f16ToF32(view.getUint16(b, true))
    for (let j = 0; j < 16; j++) {
      const q = src[b + 2 + j]
      dst[o + j] = ((q & 0x0f) - 8) * d
      dst[o + j + 16] = ((q >> 4) - 8) * d
    }
  }
}

/** The 6-bit scale and min of sub-block j, packed into 12 bytes as ggml's get_scale_min_k4. */
function scaleMinK4 (j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j] & 63, q[at + j + 4] & 63]
  return [(q[at + j + 4] & 0x0f) | ((q[at + j - 4] >> 6) << 4), (q[at + j + 4] >> 4) | ((q[at + j] >> 6) << 4)]
}

function dequantQ4_K (src: Uint8Array, dst: Float32Array): void {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  for (let b = 0, o = 0; o < dst.length; b += 144, o += QK_K) {
    const d = f16ToF32(view.getUint16(b, true))
    const dmin = f16ToF32(view.getUint16(b + 2, true))
    const scales = b + 4
    let q = b + 16
    let y = o
    for (let j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32, y += 64) {
      const [sc1, m1] = scaleMinK4(is, src, scales)
      const [sc2, m2] = scaleMinK4(is + 1, src, scales)
      for (let l = 0; l < 32; l++) dst[y + l] = d * sc1 * (src[q + l] & 0x0f) - dmin * m1
      for (let l = 0; l < 32; l++) dst[y + 32 + l] = d * sc2 * (src[q + l] >> 4) - dmin * m2
    }
  }
}

function dequantQ6_K (src: Uint8Array, dst: Float32Array): void {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength)
  for (let b = 0, o = 0; o < dst.length; b += 210, o += QK_K) {
    const d = f16ToF32(view.getUint16(b + 208, true))
    let ql = b
    let qh = b + 128
    let sc = b + 192
    for (let n = 0; n < QK_K; n += 128, ql += 64, qh += 32, sc += 8) {
      for (let l = 0; l < 32; l++) {
        const is = l >> 4
        const h = src[qh + l]
        const q1 = ((src[ql + l] & 0x0f) | ((h & 3) << 4)) - 32
        const q2 = ((src[ql + l + 32] & 0x0f) | (((h >> 2) & 3) << 4)) - 32
        const q3 = ((src[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32
        const q4 = ((src[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32
        dst[o + n + l] = d * view.getInt8(sc + is) * q1
        dst[o + n + l + 32] = d * view.getInt8(sc + is + 2) * q2
        dst[o + n + l + 64] = d * view.getInt8(sc + is + 4) * q3
        dst[o + n + l + 96] = d * view.getInt8(sc + is + 6) * q4
      }
    }
  }
}

const TYPES: Partial<Record<GgmlType, TypeInfo>> = {
  [GgmlType.F32]: { name: 'F32', blockElements: 1, blockBytes: 4, dequantize: dequantF32 },
  [GgmlType.F16]: { name: 'F16', blockElements: 1, blockBytes: 2, dequantize: f16BytesToF32 },
  [GgmlType.BF16]: { name: 'BF16', blockElements: 1, blockBytes: 2, dequantize: dequantBF16 },
  [GgmlType.Q4_0]: { name: 'Q4_0', blockElements: 32, blockBytes: 18, dequantize: dequantQ4_0 },
  [GgmlType.Q8_0]: { name: 'Q8_0', blockElements: 32, blockBytes: 34, dequantize: dequantQ8_0 },
  [GgmlType.Q4_K]: { name: 'Q4_K', blockElements: QK_K, blockBytes: 144, dequantize: dequantQ4_K },
  [GgmlType.Q6_K]: { name: 'Q6_K', blockElements: QK_K, blockBytes: 210, dequantize: dequantQ6_K },
  // Known so that errors can name them; no dequantizer yet.
  [GgmlType.Q4_1]: { name: 'Q4_1', blockElements: 32, blockBytes: 20 },
  [GgmlType.Q5_0]: { name: 'Q5_0', blockElements: 32, blockBytes: 22 },
  [GgmlType.Q5_1]: { name: 'Q5_1', blockElements: 32, blockBytes: 24 },
  [GgmlType.Q2_K]: { name: 'Q2_K', blockElements: QK_K, blockBytes: 84 },
  [GgmlType.Q3_K]: { name: 'Q3_K', blockElements: QK_K, blockBytes: 110 },
  [GgmlType.Q5_K]: { name: 'Q5_K', blockElements: QK_K, blockBytes: 176 }
}

export function typeName (type: number): string {
  return TYPES[type as GgmlType]?.name ?? `unknown ggml type ${type}`
}

export function typeInfo (type: number, tensor: string): TypeInfo {
  const info = TYPES[type as GgmlType]
  if (info == null) throw new Error(`tensor ${tensor}: unknown ggml type ${type}`)
  return info
}

/** ggml quantizes along rows: a row must be a whole number of blocks. */
export function checkRowLength (type: number, rowLength: number, tensor: string): void {
  const info = typeInfo(type, tensor)
  if (rowLength % info.blockElements !== 0) {
    throw new Error(`tensor ${tensor}: rows of ${rowLength} values are not a whole number of ${info.name} blocks of ${info.blockElements}`)
  }
}

/** Bytes taken by `elements` values of this type; elements must fill whole blocks. */
export function byteSize (type: number, elements: number, tensor: string): number {
  const info = typeInfo(type, tensor)
  if (elements % info.blockElements !== 0) {
    throw new Error(`tensor ${tensor}: ${elements} elements is not a whole number of ${info.name} blocks of ${info.blockElements}`)
  }
  return (elements / info.blockElements) * info.blockBytes
}

export function dequantize (type: number, bytes: Uint8Array, elements: number, tensor: string): Float32Array {
  const info = typeInfo(type, tensor)
  if (info.dequantize == null) throw new Error(`tensor ${tensor}: quantization type ${info.name} is not supported yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)`)
  const want = byteSize(type, elements, tensor)
  if (bytes.length < want) throw new Error(`tensor ${tensor}: ${info.name} data has ${bytes.length} bytes, needs ${want}`)
  const out = new Float32Array(elements)
  info.dequantize(bytes, out)
  return out
}
