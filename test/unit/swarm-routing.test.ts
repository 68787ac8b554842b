import { describe, expect, it } from 'vitest'
import { findRoute, BanList, hopCost } from '../../src/swarm/routing.ts'
import { chooseRange, shouldMove, bottleneck } from '../../src/swarm/placement.ts'
import { blocksThatFit, type LoadedModel } from '../../src/swarm/hosting.ts'
import { decodeDeadline } from '../../src/swarm/hop.ts'
import { randomLlamaGguf } from '../../src/model/random-model.ts'
import { openGguf } from '../../src/model/gguf-model.ts'
import { openBlobSource } from '../../src/model/source-blob.ts'
import { GgmlType } from '../../src/model/ggml-types.ts'
import { llamaConfig } from '../helpers/llama-config.ts'
import type { Vocabulary } from '../../src/model/tokenizer.ts'
import type { Runtime } from '../../src/engine/runtime.ts'
import { ShardTable, coverage, missingRanges, type ShardEntry } from '../../src/swarm/shard-table.ts'
import { checkShardAnnounce } from '../../src/swarm/messages.ts'
import { decodeTensor, encodeTensor } from '../../src/swarm/tensor-codec.ts'
import { f16ToF32 as fromHalf, f32ToF16 as toHalf } from '../../src/model/ggml-types.ts'

const entry = (peer: string, start: number, end: number, ms = 1, load = 0): ShardEntry => ({
  peer, model: 'm', name: 'm', nLayers: 8, start, end, msPerTokenLayer: ms, freeCacheTokens: 1000, load, rtts: {}, ttl: 30, expiresAt: Infinity
})

describe('routing', () => {
  it('finds the cheapest chain covering all blocks', () => {
    const entries = [entry('a', 0, 3), entry('b', 4, 7), entry('c', 0, 7, 10), entry('d', 4, 7, 0.1)]
    const route = findRoute(entries, 8, { rttMs: () => 5 })!
    expect(route.map(h => h.peer)).toEqual(['a', 'd'])
    expect(route.map(h => [h.start, h.end])).toEqual([[0, 3], [4, 7]])
  })

  it('counts the network: one far server loses to two near ones', () => {
    const entries = [entry('near1', 0, 3), entry('near2', 4, 7), entry('far', 0, 7)]
    const rtt: Record<string, number> = { near1: 2, near2: 2, far: 200 }
    expect(findRoute(entries, 8, { rttMs: p => rtt[p] })!.map(h => h.peer)).toEqual(['near1', 'near2'])
    rtt.far = 1
    expect(findRoute(entries, 8, { rttMs: p => rtt[p] })!.map(h => h.peer)).toEqual(['far'])
  })

  it('avoids banned peers and reports an uncoverable model', () => {
    const entries = [entry('a', 0, 3), entry('b', 4, 7), entry('b2', 4, 7, 5)]
    expect(findRoute(entries, 8, { rttMs: () => 1, banned: p => p === 'b' })!.map(h => h.peer)).toEqual(['a', 'b2'])
    expect(findRoute(entries, 8, { rttMs: () => 1, banned: p => p.startsWith('b') })).toBeUndefined()
  })

  it('routes only the part of a chain that needs replacing', () => {
    const entries = [entry('a', 0, 3), entry('b', 4, 7), entry('b2', 4, 7, 5)]
    const part = findRoute(entries, 8, { rttMs: () => 1, banned: p => p === 'b', from: 4 })!
    expect(part).toEqual([{ peer: 'b2', start: 4, end: 7, estimateMs: hopCost(entries[2], 1) }])
  })

  it('bans with growing backoff and forgives on success', () => {
    const bans = new BanList(1000, 10_000)
    expect(bans.ban('x', 0)).toBe(1000)
    expect(bans.isBanned('x', 999)).toBe(true)
    expect(bans.isBanned('x', 1000)).toBe(false)
    expect(bans.ban('x', 1000)).toBe(2000)
    bans.clear('x')
    expect(bans.isBanned('x', 1001)).toBe(false)
  })

  it('says when the first of several banned peers may be tried again', () => {
    const bans = new BanList(1000, 10_000)
    bans.ban('x', 0)
    bans.ban('y', 0)
    bans.ban('y', 0)
    expect(bans.untilFirstExpiry(['x', 'y'], 400)).toBe(600)
    expect(bans.untilFirstExpiry(['y'], 400)).toBe(1600)
    expect(bans.untilFirstExpiry(['x', 'free'], 400)).toBe(0)
    expect(bans.untilFirstExpiry([], 400)).toBe(0)
  })
})

describe('step deadlines', () => {
  it('a hop that answered quickly gets a deadline from its own pace, never under 5 s nor over the session\'s', () => {
    expect(decodeDeadline(30_000, [2, 3, 2])).toBe(30_000)
    expect(decodeDeadline(30_000, Array(8).fill(2))).toBe(5000)
    expect(decodeDeadline(30_000, [...Array(20).fill(200), 9000])).toBe(10_000)
    expect(decodeDeadline(30_000, Array(8).fill(104.8218))).toBe(5242)
    expect(decodeDeadline(30_000, Array(8).fill(1000))).toBe(30_000)
    expect(decodeDeadline(3000, Array(8).fill(2))).toBe(3000)
  })
})

describe('placement', () => {
  it('hosts where the swarm is thinnest', () => {
    expect(chooseRange([], 8, 3)).toEqual([0, 2])
    expect(chooseRange([entry('a', 0, 3)], 8, 4)).toEqual([4, 7])
    expect(chooseRange([entry('a', 0, 7), entry('b', 0, 3)], 8, 2)).toEqual([4, 5])
  })

  it('moves only when the bottleneck improves enough', () => {
    const entries = [entry('a', 0, 3), entry('b', 0, 3), entry('me', 0, 3)]
    expect(bottleneck(entries, 8)).toBe(0)
    expect(shouldMove(entries, 'me', [0, 3], 8)).toEqual([4, 7])
    const balanced = [entry('a', 0, 3), entry('b', 4, 7), entry('me', 4, 7)]
    expect(shouldMove(balanced, 'me', [4, 7], 8)).toBeUndefined()
  })
})

describe('memory budget', () => {
  it('counts blocks as the runtime will hold them: packed Q8_0 and float16 fit more than float32', async () => {
    const config = llamaConfig({ dim: 256, hiddenDim: 512, nLayers: 8, nHeads: 4, nKvHeads: 2, headDim: 64, vocabSize: 32, contextLength: 256 })
    const vocab: Vocabulary = { kind: 'spm', tokens: Array.from({ length: 32 }, (_, i) => `t${i}`), addBos: true }
    const model = await openGguf(openBlobSource(new Blob([(await randomLlamaGguf(config, vocab, { type: GgmlType.Q8_0 })).slice()])))
    const fit = (runtime: Partial<Runtime>): number => blocksThatFit({ opened: { model }, runtime } as unknown as LoadedModel, 4 * 2 ** 20, 256)
    // Per block: 576 Ki weights (2.25 MiB as float32, 1.13 MiB as float16, 0.63 MiB packed) + 0.25 MiB of cache, in 4 MiB.
    expect([fit({ packedMatMul: false }), fit({ packedMatMul: false, halfWeights: true }), fit({ packedMatMul: true })]).toEqual([1, 2, 4])
  })
})

describe('shard table', () => {
  it('keeps one range per agent and model, expires, and finds gaps', () => {
    const t = new ShardTable()
    const body = { model: 'm', name: 'm', nLayers: 8, start: 0, end: 3, msPerTokenLayer: 1, freeCacheTokens: 10, load: 0, rtts: {}, ttl: 10 }
    t.apply('a', body, 0)
    t.apply('a', { ...body, start: 2, end: 5 }, 0)
    t.apply('b', { ...body, start: 6, end: 6 }, 5000)
    expect(coverage(t.forModel('m'), 8)).toEqual([0, 0, 1, 1, 1, 1, 1, 0])
    expect(missingRanges(t.forModel('m'), 8)).toEqual([[0, 1], [7, 7]])
    expect(t.expire(10_000)).toBe(true)
    expect(t.forModel('m').map(e => e.peer)).toEqual(['b'])
  })

  it('rejects malformed shard announces', () => {
    const ok = { model: 'm', name: 'm', nLayers: 8, start: 0, end: 3, msPerTokenLayer: 1, freeCacheTokens: 10, load: 0, rtts: {}, ttl: 10 }
    expect(checkShardAnnounce(ok)).toBeUndefined()
    expect(checkShardAnnounce({ ...ok, end: 8 })).toBe('range')
    expect(checkShardAnnounce({ ...ok, load: 2 })).toBe('load')
    expect(checkShardAnnounce({ ...ok, rtts: { x: -1 } })).toBe('rtts')
  })
})

describe('tensor codec', () => {
  it('round-trips f32 exactly and f16 within half precision', () => {
    const x = Float32Array.from([0, -1.5, 3.14159, 1e-5, -65504, 1234.5678])
    expect(decodeTensor(encodeTensor(x, 'f32', 3), 'f32', 2, 3)).toEqual(x)
    const h = decodeTensor(encodeTensor(x, 'f16', 3), 'f16', 2, 3)
    x.forEach((v, i) => expect(Math.abs(h[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 6e-8))
  })
  it('q8 takes a quarter of the bytes plus a scale per token, within 1/254 of each token\'s largest value', () => {
    const dim = 64
    const x = Float32Array.from({ length: 3 * dim }, (_, i) => Math.sin(i * 1.7) * (i < dim ? 0.01 : i < 2 * dim ? 5 : 300))
    const bytes = encodeTensor(x, 'q8', dim)
    expect(bytes.byteLength).toBe(3 * (4 + dim))
    const q = decodeTensor(bytes, 'q8', 3, dim)
    for (let r = 0; r < 3; r++) {
      const row = x.subarray(r * dim, (r + 1) * dim)
      const max = Math.max(...row.map(Math.abs))
      row.forEach((v, i) => expect(Math.abs(q[r * dim + i] - v)).toBeLessThanOrEqual(max / 254 + 1e-6))
    }
    // An all-zero token, and re-encoding what was decoded, change nothing.
    expect(decodeTensor(encodeTensor(new Float32Array(dim), 'q8', dim), 'q8', 1, dim)).toEqual(new Float32Array(dim))
    expect(decodeTensor(encodeTensor(q, 'q8', dim), 'q8', 3, dim)).toEqual(q)
  })
  it('decodes a frame wherever it sits in the buffer it arrived in (length-prefixed frames start at any byte)', () => {
    const dim = 8
    const x = Float32Array.from({ length: 2 * dim }, (_, i) => Math.cos(i) * 10)
    for (const dtype of ['f32', 'f16', 'q8'] as const) {
      const bytes = encodeTensor(x, dtype, dim)
      const packet = new Uint8Array(bytes.byteLength + 3)
      packet.set(bytes, 3)
      expect(decodeTensor(packet.subarray(3), dtype, 2, dim)).toEqual(decodeTensor(bytes, dtype, 2, dim))
    }
  })
  it('rounds half to nearest even and saturates to infinity', () => {
    expect(toHalf(1)).toBe(0x3c00)
    expect(fromHalf(toHalf(65520))).toBe(Infinity)
    expect(fromHalf(toHalf(2049))).toBe(2048)
    expect(fromHalf(toHalf(2051))).toBe(2052)
  })
  it('refuses frames of the wrong size or with non-finite values', () => {
    expect(() => decodeTensor(new Uint8Array(6), 'f32', 1, 2)).toThrow(/expected 1 × 2 f32/)
    expect(() => decodeTensor(new Uint8Array(2 * 8), 'q8', 2, 8)).toThrow(/expected 2 × 8 q8 values \(24 bytes\)/)
    expect(() => decodeTensor(encodeTensor(Float32Array.from([Infinity]), 'f32', 1), 'f32', 1, 1)).toThrow(/non-finite/)
    const nanScale = new Uint8Array(4 + 2)
    new DataView(nanScale.buffer).setFloat32(0, NaN, true)
    expect(() => decodeTensor(nanScale, 'q8', 1, 2)).toThrow(/non-finite/)
  })
})
