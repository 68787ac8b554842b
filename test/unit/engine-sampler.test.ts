import { describe, expect, it } from 'vitest'
import { argmax, Sampler } from '../../src/engine/sampler.ts'
import { parseLayerRanges } from '../../src/engine/pipeline.ts'
import { causalMask } from '../../src/engine/rope.ts'

const logits = Float32Array.from([1, 3, 2.9, -1, 0.5])

describe('sampler', () => {
  it('greedy is argmax', () => {
    expect(new Sampler().sample(logits)).toBe(1)
    expect(argmax(logits)).toBe(1)
  })

  it('the same seed reproduces a run; another seed differs', () => {
    const run = (seed: number): number[] => { const s = new Sampler({ temperature: 1.5, seed }); return Array.from({ length: 40 }, () => s.sample(logits)) }
    expect(run(7)).toEqual(run(7))
    expect(run(7)).not.toEqual(run(8))
  })

  it('top-k 1 is greedy; top-k 2 never leaves the two best', () => {
    const s = new Sampler({ temperature: 5, topK: 2, seed: 1 })
    const seen = new Set(Array.from({ length: 200 }, () => s.sample(logits)))
    expect(seen).toEqual(new Set([1, 2]))
    expect(new Sampler({ temperature: 5, topK: 1, seed: 1 }).sample(logits)).toBe(1)
  })

  it('top-p keeps the smallest set reaching the mass', () => {
    const s = new Sampler({ temperature: 1, topP: 0.5, seed: 2 })
    expect(new Set(Array.from({ length: 100 }, () => s.sample(logits)))).toEqual(new Set([1, 2]))
  })

  it('repetition penalty moves greedy off a repeated token', () => {
    expect(new Sampler({ repetitionPenalty: 1.5 }).sample(logits, [1])).toBe(2)
  })
})

describe('layer ranges and masks', () => {
  it('parses contiguous ranges and rejects gaps, overlaps and out-of-model blocks', () => {
    expect(parseLayerRanges('0-1,2-4', 5)).toEqual([[0, 1], [2, 4]])
    expect(parseLayerRanges('0,1-3,4', 5)).toEqual([[0, 0], [1, 3], [4, 4]])
    expect(() => parseLayerRanges('0-1,3-4', 5)).toThrow(/contiguous/)
    expect(() => parseLayerRanges('0-5', 5)).toThrow(/outside the model's blocks 0-4/)
    expect(() => parseLayerRanges('0-2', 5)).toThrow(/stop at block 2/)
    expect(() => parseLayerRanges('a-b', 5)).toThrow(/bad layer range/)
  })

  it('causal mask lets token t see the past and itself only, for every stacked head', () => {
    const m = causalMask(2, 2, 2)
    const rows = Array.from({ length: 4 }, (_, r) => Array.from(m.slice(r * 4, r * 4 + 4), v => v === 0 ? 1 : 0))
    expect(rows).toEqual([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]])
  })
})
