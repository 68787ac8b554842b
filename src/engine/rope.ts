// Rotary position tables computed on the CPU for the positions of one forward call: theta_i =
// pos / linearFactor * base^(-2i/headDim) / freqFactor_i (Llama 3 scaling ships freqFactors
// as rope_freqs.weight in GGUF).
import type { LlamaConfig } from '../model/config.ts'

export function ropeTables (c: LlamaConfig, start: number, tokens: number, freqFactors?: Float32Array): { cos: Float32Array, sin: Float32Array } {
  const half = c.headDim / 2
  const cos = new Float32Array(tokens * half)
  const sin = new Float32Array(tokens * half)
  for (let t = 0; t < tokens; t++) {
    const pos = (start + t) / c.ropeLinearFactor
    for (let i = 0; i < half; i++) {
      const freq = Math.pow(c.ropeTheta, (-2 * i) / c.headDim) / (freqFactors?.[i] ?? 1)
      const angle = pos * freq
      cos[t * half + i] = Math.cos(angle)
      sin[t * half + i] = Math.sin(angle)
    }
  }
  return { cos, sin }
}

/**
 * Additive causal mask for `tokens` new tokens after `past` cached ones, repeated for each of
 * the `group` query heads that share a KV head (they are stacked along the rows).
 */
export function causalMask (past: number, tokens: number, group: number): Float32Array {
  const total = past + tokens
  const mask = new Float32Array(group * tokens * total)
  for (let h = 0; h < group; h++) {
    for (let t = 0; t < tokens; t++) {
      const row = (h * tokens + t) * total
      mask.fill(-Infinity, row + past + t + 1, row + total)
    }
  }
  return mask
}
