// float32 -> ggml block encodings, for the GGUF writer. Q8_0 and Q4_0 follow ggml's reference
// quantizers; Q4_K and Q6_K use a simple per-sub-block min/max fit (valid blocks that llama.cpp
// decodes identically, though less accurate than its iterative search).
import { f16ToF32, f32ToF16, GgmlType, typeName } from './ggml-types.ts'

const QK_K = 256

function blocks (values: Float32Array, size: number, what: string): number {
  if (values.length % size !== 0) throw new Error(`${what}: ${values.length} values is not a whole number of blocks of ${size}`)
  return values.length / size
}

function quantizeQ8_0 (x: Float32Array): Uint8Array {
  const n = blocks(x, 32, 'Q8_0')
  const out = new Uint8Array(n * 34)
  const view = new DataView(out.buffer)
  for (let b = 0; b < n; b++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]))
    const d = amax / 127
    const id = d !== 0 ? 1 / d : 0
    view.setUint16(b * 34, f32ToF16(d), true)
    for (let j = 0; j < 32; j++) view.setInt8(b * 34 + 2 + j, Math.round(x[b * 32 + j] * id))
  }
  return out
}

function quantizeQ4_0 (x: Float32Array): Uint8Array {
  const n = blocks(x, 32, 'Q4_0')
  const out = new Uint8Array(n * 18)
  const view = new DataView(out.buffer)
  for (let b = 0; b < n; b++) {
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j]
      if (Math.abs(v) > amax) { amax = Math.abs(v); max = v }
    }
    const d = max / -8
    const id = d !== 0 ? 1 / d : 0
    view.setUint16(b * 18, f32ToF16(d), true)
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(x[b * 32 + j] * id + 8.5))
      const hi = Math.min(15, Math.trunc(x[b * 32 + 16 + j] * id + 8.5))
      out[b * 18 + 2 + j] = lo | (hi << 4)
    }
  }
  return out
}

function quantizeQ4_K (x: Float32Array): Uint8Array {
  const n = blocks(x, QK_K, 'Q4_K')
  const out = new Uint8Array(n * 144)
  const view = new DataView(out.buffer)
  for (let b = 0; b < n; b++) {
    const base = b * QK_K
    const scales = new Array<number>(8)
    const mins = new Array<number>(8)
    for (let s = 0; s < 8; s++) {
      let lo = 0
      let hi = -Infinity
      for (let l = 0; l < 32; l++) { const v = x[base + s * 32 + l]; lo = Math.min(lo, v); hi = Math.max(hi, v) }
      scales[s] = (hi - lo) / 15
      mins[s] = -lo
    }
    const d = f16ToF32(f32ToF16(Math.max(...scales) / 63))
    const dmin = f16ToF32(f32ToF16(Math.max(...mins) / 63))
    const sc = scales.map(s => d > 0 ? Math.min(63, Math.round(s / d)) : 0)
    const m = mins.map(v => dmin > 0 ? Math.min(63, Math.round(v / dmin)) : 0)
    const o = b * 144
    view.setUint16(o, f32ToF16(d), true)
    view.setUint16(o + 2, f32ToF16(dmin), true)
    for (let j = 0; j < 4; j++) {
      out[o + 4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6)
      out[o + 8 + j] = m[j] | ((m[j + 4] >> 4) << 6)
      out[o + 12 + j] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4)
    }
    for (let pair = 0; pair < 4; pair++) {
      for (let l = 0; l < 32; l++) {
        const q = [0, 1].map(half => {
          const s = pair * 2 + half
          const step = d * sc[s]
          const v = x[base + s * 32 + l] + dmin * m[s]
          return step > 0 ? Math.max(0, Math.min(15, Math.round(v / step))) : 0
        })
        out[o + 16 + pair * 32 + l] = q[0] | (q[1] << 4)
      }
    }
  }
  return out
}

function quantizeQ6_K (x: Float32Array): Uint8Array {
  const n = blocks(x, QK_K, 'Q6_K')
  const out = new Uint8Array(n * 210)
  const view = new DataView(out.buffer)
  for (let b = 0; b < n; b++) {
    const base = b * QK_K
    const subScales = Array.from({ length: 16 }, (_, s) => {
      let amax = 0
      for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[base + s * 16 + l]))
      return amax / 31
    })
    const d = f16ToF32(f32ToF16(Math.max(...subScales) / 127))
    const sc = subScales.map(s => d > 0 ? Math.min(127, Math.round(s / d)) : 0)
    const q = new Int32Array(QK_K)
    for (let i = 0; i < QK_K; i++) {
      const step = d * sc[i >> 4]
      q[i] = (step > 0 ? Math.max(-32, Math.min(31, Math.round(x[base + i] / step))) : 0) + 32
    }
    const o = b * 210
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const [q1, q2, q3, q4] = [0, 32, 64, 96].map(k => q[h * 128 + l + k])
        out[o + h * 64 + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4)
        out[o + h * 64 + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4)
        out[o + 128 + h * 32 + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
      }
    }
    sc.forEach((s, i) => view.setInt8(o + 192 + i, s))
    view.setUint16(o + 208, f32ToF16(d), true)
  }
  return out
}

export function quantize (type: GgmlType, values: Float32Array): Uint8Array {
  switch (type) {
    case GgmlType.F32: return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength))
    case GgmlType.F16: {
      const out = new Uint16Array(values.length)
      for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i])
      return new Uint8Array(out.buffer)
    }
    case GgmlType.Q8_0: return quantizeQ8_0(values)
    case GgmlType.Q4_0: return quantizeQ4_0(values)
    case GgmlType.Q4_K: return quantizeQ4_K(values)
    case GgmlType.Q6_K: return quantizeQ6_K(values)
    default: throw new Error(`quantizing to ${typeName(type)} is not supported (supported: F32, F16, Q8_0, Q4_0, Q4_K, Q6_K)`)
  }
}
