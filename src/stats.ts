/** Order statistics for timing samples (benchmarks, per-hop timings); medians because these machines are noisy. */
export function exactQuantile (xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo] + (s[hi] - s[lo]) * (pos - lo)
}

/** `exactQuantile` to 0.01, for reports. */
export function quantile (xs: number[], q: number): number {
  return Math.round(exactQuantile(xs, q) * 100) / 100
}

export const median = (xs: number[]): number => quantile(xs, 0.5)

/**
 * A distribution-free interval around the median of `xs`: the order statistics x(k) and
 * x(n+1-k) bracket the true median with probability 1 - 2·P(Binomial(n, ½) < k), whatever the
 * samples' distribution. `k` is the largest for which that reaches `confidence`; `coverage` is
 * what the chosen interval actually reaches (with few samples, [min, max] may fall short).
 */
export function medianInterval (xs: readonly number[], confidence = 0.9): { low: number, high: number, coverage: number } {
  const n = xs.length
  if (n === 0) return { low: Number.NaN, high: Number.NaN, coverage: 0 }
  const s = [...xs].sort((a, b) => a - b)
  // tail[k] = P(Binomial(n, ½) < k), built from the binomial coefficients C(n, i) / 2^n.
  const tail = [0]
  let term = 0.5 ** n
  for (let i = 0; i < Math.ceil(n / 2); i++) {
    tail.push(tail[i] + term)
    term = term * (n - i) / (i + 1)
  }
  let k = 1
  while (k + 1 <= Math.ceil(n / 2) && 1 - 2 * tail[k + 1] >= confidence) k++
  return { low: s[k - 1], high: s[n - k], coverage: Math.max(0, 1 - 2 * tail[k]) }
}
