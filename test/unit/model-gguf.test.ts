import { describe, expect, it, vi } from 'vitest'
import { httpPiece, openHttpSource } from '../../src/model/source-http.ts'
import { readFile } from 'node:fs/promises'
import { memorySource } from '../../src/model/source-memory.ts'
import { openFileSource } from '../../src/model/source.ts'
import { readGgufHeader, readGgufTensor } from '../../src/model/gguf.ts'
import { openModelSource } from '../../src/model/open-model.ts'
import { readTensor } from '../../src/model/model-file.ts'
import { dequantize, f16BytesToF32, f16ToF32, f32ToF16, f32ToF16Bytes, GgmlType } from '../../src/model/ggml-types.ts'
import { quantize } from '../../src/model/quantize.ts'
import { meta, writeGguf } from '../../src/model/gguf-writer.ts'
import { gaussian } from '../../src/model/random-model.ts'

const dir = '../shared/models/stories260K'

describe('GGUF reader', () => {
  it('reads header, metadata and tensors by offset; same weights as the llama2.c file', async () => {
    const gguf = await openModelSource(await openFileSource(`${dir}/stories260K.gguf`))
    const bin = await openModelSource(await openFileSource(`${dir}/stories260K.bin`))
    expect(gguf.config).toMatchObject({ architecture: 'llama', dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, tiedEmbeddings: false })
    expect(bin.config).toMatchObject({ ...gguf.config, normEps: 1e-5, tiedEmbeddings: true })
    for (const name of ['blk.4.attn_k.weight', 'blk.0.ffn_down.weight', 'output_norm.weight', 'token_embd.weight']) {
      expect(await readTensor(gguf, name)).toEqual(await readTensor(bin, name))
    }
    await gguf.source.close?.(); await bin.source.close?.()
  })

  it('a truncated file names the tensor that runs past the end', async () => {
    const bytes = new Uint8Array(await readFile(`${dir}/stories260K.gguf`))
    await expect(openModelSource(memorySource(bytes.slice(0, bytes.length - 1000), 'cut.gguf'))).rejects.toThrow(/cut\.gguf: tensor output\.weight \(F32, 131072 bytes at offset \d+\) runs past the end/)
    await expect(openModelSource(memorySource(bytes.slice(0, 2000), 'short.gguf'))).rejects.toThrow(/short\.gguf: header truncated at offset \d+ while reading/)
  })

  it('bad magic, unknown tensor type and unknown architecture are named', async () => {
    const bytes = new Uint8Array(await readFile(`${dir}/stories260K.gguf`))
    const bad = bytes.slice(); bad[0] = 0x58
    await expect(readGgufHeader(memorySource(bad, 'bad.gguf'))).rejects.toThrow(/bad\.gguf: not a GGUF file/)
    // Patch a tensor's type field in a real header to 99.
    const header = await readGgufHeader(memorySource(bytes))
    const at = findTypeField(bytes, 'blk.2.attn_q.weight')
    const patched = bytes.slice(); new DataView(patched.buffer).setUint32(at, 99, true)
    await expect(readGgufHeader(memorySource(patched, 'p.gguf'))).rejects.toThrow(/tensor blk\.2\.attn_q\.weight: unknown ggml type 99/)
    expect(header.tensors.size).toBe(48)
    const mamba = writeGguf({ 'general.architecture': meta.str('mamba') }, [{ name: 'token_embd.weight', dims: [32, 4], type: GgmlType.F32, data: new Uint8Array(512) }])
    await expect(openModelSource(memorySource(mamba, 'm.gguf'))).rejects.toThrow(/m\.gguf: unsupported architecture 'mamba'/)
  })

  it('a quantization type without a dequantizer is named with the tensor', () => {
    expect(() => dequantize(GgmlType.Q5_K, new Uint8Array(176), 256, 'blk.0.ffn_up.weight')).toThrow(/blk\.0\.ffn_up\.weight: quantization type Q5_K is not supported/)
  })

  it('a range outside the file is refused with offsets', async () => {
    await expect(memorySource(new Uint8Array(10), 'x').read(8, 4)).rejects.toThrow(/read of 4 bytes at offset 8 is outside the file \(10 bytes\)/)
  })
})

function findTypeField (bytes: Uint8Array, name: string): number {
  const needle = new TextEncoder().encode(name)
  outer: for (let i = 0; i < bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer
    const nDims = new DataView(bytes.buffer).getUint32(i + needle.length, true)
    return i + needle.length + 4 + nDims * 8
  }
  throw new Error(`${name} not found`)
}

describe('HTTP byte source', () => {
  it('fetches a read larger than one piece as several Range requests, each under the piece size', async () => {
    const file = Uint8Array.from({ length: 1000 }, (_, i) => i % 256)
    const ranges: string[] = []
    vi.stubGlobal('fetch', async (_url: string, init?: { method?: string, headers?: Record<string, string> }) => {
      if (init?.method === 'HEAD') return new Response(null, { status: 200, headers: { 'content-length': String(file.length) } })
      const range = init?.headers?.range ?? ''
      ranges.push(range)
      const [a, b] = /bytes=(\d+)-(\d+)/.exec(range)?.slice(1).map(Number) ?? [0, file.length - 1]
      return new Response(file.slice(a, b + 1), { status: 206 })
    })
    const saved = httpPiece.bytes
    httpPiece.bytes = 300
    try {
      const source = await openHttpSource('http://example.test/m.gguf')
      expect(Array.from(await source.read(100, 700))).toEqual(Array.from(file.subarray(100, 800)))
      expect(ranges).toEqual(['bytes=100-399', 'bytes=400-699', 'bytes=700-799'])
      expect(httpPiece.bytes = saved).toBe(1 << 30) // the default piece stays under 2 GB
    } finally {
      httpPiece.bytes = saved
      vi.unstubAllGlobals()
    }
  })
})

describe('ggml dequantization', () => {
  it('f16 conversion round-trips and rounds to nearest even', () => {
    for (const v of [0, 1, -2.5, 65504, 6.1035e-5, 1e-7, 0.1]) expect(f16ToF32(f32ToF16(v))).toBeCloseTo(v, 4)
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00) // tie: stays even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02)
  })

  it('the bulk f16 conversions agree with the scalar ones on every half and on awkward floats', () => {
    // Every float16 bit pattern, from bytes at an odd offset (frames arrive at any alignment).
    const bytes = new Uint8Array(1 + 2 * 65536)
    for (let h = 0; h < 65536; h++) { bytes[1 + 2 * h] = h & 0xff; bytes[2 + 2 * h] = h >> 8 }
    const halves = new Float32Array(65536)
    f16BytesToF32(bytes.subarray(1), halves)
    for (let h = 0; h < 65536; h++) {
      if (!Object.is(halves[h], f16ToF32(h)) && !(Number.isNaN(halves[h]) && Number.isNaN(f16ToF32(h)))) throw new Error(`half 0x${h.toString(16)}: ${halves[h]} vs ${f16ToF32(h)}`)
    }
    // Ties, subnormals, overflow, infinities, NaN, signed zeros, and random bit patterns.
    const floats = new Float32Array(20_000)
    floats.set([0, -0, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65520, 1e9, -Infinity, Infinity, NaN, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 6.1e-5, -1e-7])
    const bits = new Uint32Array(floats.buffer)
    for (let i = 15, x = 12345; i < bits.length; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; bits[i] = x }
    const out = new Uint8Array(2 * floats.length)
    f32ToF16Bytes(floats, out)
    const view = new DataView(out.buffer)
    for (let i = 0; i < floats.length; i++) {
      if (view.getUint16(2 * i, true) !== f32ToF16(floats[i])) throw new Error(`float ${floats[i]}: 0x${view.getUint16(2 * i, true).toString(16)} vs 0x${f32ToF16(floats[i]).toString(16)}`)
    }
  })

  it('Q8_0 and Q4_0 blocks decode per the ggml layout', () => {
    const q8 = new Uint8Array(34); new DataView(q8.buffer).setUint16(0, f32ToF16(0.5), true)
    q8[2] = 10; q8[3] = 0xff // -1
    expect(Array.from(dequantize(GgmlType.Q8_0, q8, 32, 't').slice(0, 3))).toEqual([5, -0.5, 0])
    const q4 = new Uint8Array(18); new DataView(q4.buffer).setUint16(0, f32ToF16(2), true)
    q4[2] = 0x9f // low nibble 15 -> element 0, high nibble 9 -> element 16
    const d = dequantize(GgmlType.Q4_0, q4, 32, 't')
    expect([d[0], d[16], d[1]]).toEqual([14, 2, -16])
  })

  it('Q4_K decodes 6-bit packed scales and mins', () => {
    const b = new Uint8Array(144); const v = new DataView(b.buffer)
    v.setUint16(0, f32ToF16(0.5), true); v.setUint16(2, f32ToF16(0.25), true)
    b[4] = 3; b[8] = 4 // sub-block 0: scale 3, min 4
    b[12] = 0x21 // sub-block 4: scale low bits 1, min low bits 2
    b[4 + 0] |= 1 << 6 // sub-block 4 scale high bits 1 -> 17
    b[16] = 0x07 // element 0 = 7 (sub-block 0), element 32 = 0 (sub-block 1)
    b[16 + 64] = 0x05 // element 128 (sub-block 4) = 5
    const d = dequantize(GgmlType.Q4_K, b, 256, 't')
    expect(d[0]).toBe(0.5 * 3 * 7 - 0.25 * 4)
    expect(d[128]).toBe(0.5 * 17 * 5 - 0.25 * 2)
  })

  it('Q6_K decodes 4+2 bit values with int8 sub-block scales', () => {
    const b = new Uint8Array(210); const v = new DataView(b.buffer)
    v.setUint16(208, f32ToF16(0.5), true)
    v.setInt8(192, -2); v.setInt8(194, 3)
    b[0] = 0x0f; b[128] = 0x03 // element 0: q = 15 | 3<<4 = 63 -> 31
    b[32] = 0x01; b[128] |= 0x00 // element 32: q = 1 | 0<<4 -> -31, scale index 2
    const d = dequantize(GgmlType.Q6_K, b, 256, 't')
    expect(d[0]).toBe(0.5 * -2 * 31)
    expect(d[32]).toBe(0.5 * 3 * -31)
  })

  for (const [type, tolerance] of [[GgmlType.Q8_0, 0.01], [GgmlType.Q4_0, 0.15], [GgmlType.Q4_K, 0.15], [GgmlType.Q6_K, 0.04], [GgmlType.F16, 0.001]] as const) {
    it(`quantize then dequantize ${GgmlType[type]} stays within its precision`, () => {
      const normal = gaussian(3)
      const x = Float32Array.from({ length: 512 }, () => normal())
      const y = dequantize(type, quantize(type, x), x.length, 't')
      const rms = Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]) ** 2, 0) / x.length)
      expect(rms).toBeLessThan(tolerance)
      expect(rms).toBeGreaterThan(0)
    })
  }

  it('the writer refuses data that does not fit the shape', () => {
    expect(() => writeGguf({}, [{ name: 'w', dims: [32, 2], type: GgmlType.Q8_0, data: new Uint8Array(10) }])).toThrow(/tensor w: Q8_0 data has 10 bytes, its shape needs 68/)
  })

  it('written tensors read back', async () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => i / 7)
    const file = writeGguf({ 'general.architecture': meta.str('llama'), 'x.count': meta.u32(3) }, [
      { name: 'a', dims: [32, 2], type: GgmlType.Q8_0, data: quantize(GgmlType.Q8_0, x) },
      { name: 'b', dims: [64], type: GgmlType.F32, data: quantize(GgmlType.F32, x) }
    ])
    const src = memorySource(file)
    const h = await readGgufHeader(src)
    expect(h.metadata.get('x.count')).toBe(3)
    expect(await readGgufTensor(src, h.tensors.get('b')!)).toEqual(x)
    expect(h.tensors.get('b')!.offset % 32).toBe(0)
  })
})
