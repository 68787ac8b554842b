// Hidden states on the wire: what encoding and decoding one frame costs a host, per wire dtype,
// for one decode step and for a long prefill of a 1536-wide model; f16 side by side with the
// per-value conversion (f32ToF16/f16ToF32 through a DataView) the bulk one replaced. The first
// round of each is left out (JIT warm-up).
import { decodeTensor, encodeTensor, WIRE_DTYPES } from '../src/swarm/tensor-codec.ts'
import { f16ToF32, f32ToF16 } from '../src/model/ggml-types.ts'
import { exactQuantile } from '../src/stats.ts'
import { ratio } from './measure.ts'

const DIM = 1536
const TOKENS = [1, 512]
const ROUNDS = 41

function perValueF16 (data: Float32Array): Float32Array {
  const bytes = new DataView(new ArrayBuffer(data.length * 2))
  for (let i = 0; i < data.length; i++) bytes.setUint16(i * 2, f32ToF16(data[i]), true)
  const out = new Float32Array(data.length)
  for (let i = 0; i < out.length; i++) out[i] = f16ToF32(bytes.getUint16(i * 2, true))
  return out
}

/** Median milliseconds of `fn` over the rounds, each kind taking its turn within a round. */
function timeAll (fns: Record<string, () => unknown>): Record<string, number> {
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map(k => [k, []]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, fn] of Object.entries(fns)) {
      const t = performance.now()
      fn()
      samples[k].push(performance.now() - t)
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(exactQuantile(v.slice(1), 0.5) * 1000) / 1000]))
}

export async function run (): Promise<Record<string, unknown>> {
  const figures: Record<string, unknown> = {}
  for (const tokens of TOKENS) {
    const data = new Float32Array(tokens * DIM).map(() => (Math.random() - 0.5) * 8)
    const fns: Record<string, () => unknown> = { f16_per_value: () => perValueF16(data) }
    for (const dtype of WIRE_DTYPES) fns[dtype] = () => decodeTensor(encodeTensor(data, dtype, DIM), dtype, tokens, DIM)
    const ms = timeAll(fns)
    figures[`${tokens}_token${tokens > 1 ? 's' : ''}`] = {
      bytes_f32: data.byteLength,
      encode_and_decode_ms: ms,
      f16_bulk_vs_per_value: ratio(ms.f16, ms.f16_per_value)
    }
  }
  return { dim: DIM, rounds: ROUNDS, figures }
}
