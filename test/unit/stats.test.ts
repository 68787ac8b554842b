import { describe, expect, it } from 'vitest'
import { exactQuantile, medianInterval } from '../../src/stats.ts'

describe('medianInterval', () => {
  it('picks the narrowest order statistics that reach the confidence, whatever the input order', () => {
    // n = 7: [x(1), x(7)] covers 1 - 2/128 = 0.984, [x(2), x(6)] only 1 - 16/128 = 0.875.
    const seven = [0.95, 0.86, 0.98, 0.93, 0.9, 0.94, 0.92]
    expect(medianInterval(seven, 0.9)).toEqual({ low: 0.86, high: 0.98, coverage: 1 - 2 / 128 })
    expect(medianInterval(seven, 0.85)).toEqual({ low: 0.9, high: 0.95, coverage: 1 - 16 / 128 })
    // n = 15 at 0.9: k = 4, since P(B < 4) = 576/32768 and P(B < 5) = 1941/32768.
    const fifteen = Array.from({ length: 15 }, (_, i) => 15 - i)
    expect(medianInterval(fifteen, 0.9)).toEqual({ low: 4, high: 12, coverage: 1 - 2 * 576 / 32768 })
  })

  it('brackets the median, and says when too few samples cannot reach the confidence', () => {
    const xs = [3, 1, 2]
    const r = medianInterval(xs, 0.9)
    expect(r.low).toBeLessThanOrEqual(exactQuantile(xs, 0.5))
    expect(r.high).toBeGreaterThanOrEqual(exactQuantile(xs, 0.5))
    expect(r).toEqual({ low: 1, high: 3, coverage: 0.75 })
    expect(medianInterval([5], 0.9)).toEqual({ low: 5, high: 5, coverage: 0 })
    expect(medianInterval([], 0.9).coverage).toBe(0)
  })
})
