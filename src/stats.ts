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
