// Token sampling: greedy when temperature is 0, otherwise repetition penalty, temperature,
// top-k and top-p over a seeded generator, so a seed reproduces a run exactly.
export interface SamplerOptions {
  temperature?: number
  topK?: number
  topP?: number
  repetitionPenalty?: number
  /** How many recent tokens the repetition penalty looks at. */
  repetitionWindow?: number
  seed?: number
}

/** mulberry32: small, fast and the same in every JS engine. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function argmax (logits: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i
  return best
}

export class Sampler {
  private readonly random: () => number
  constructor (readonly opts: SamplerOptions = {}) {
    this.random = seededRandom(opts.seed ?? 0)
  }

  sample (logits: Float32Array, history: number[] = []): number {
    const o = this.opts
    const scores = Float32Array.from(logits)
    const penalty = o.repetitionPenalty ?? 1
    if (penalty !== 1) {
      // llama.cpp's rule: shrink positive logits, push negative ones further down.
      for (const id of new Set(history.slice(-(o.repetitionWindow ?? 64)))) {
        scores[id] = scores[id] > 0 ? scores[id] / penalty : scores[id] * penalty
      }
    }
    const temperature = o.temperature ?? 0
    if (temperature <= 0) return argmax(scores)
    let order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a])
    if (o.topK != null && o.topK > 0) order = order.slice(0, o.topK)
    const max = scores[order[0]]
    const weights = order.map(id => Math.exp((scores[id] - max) / temperature))
    const total = weights.reduce((a, b) => a + b, 0)
    let keep = order.length
    if (o.topP != null && o.topP < 1) {
      let mass = 0
      for (keep = 0; keep < order.length;) { mass += weights[keep++] / total; if (mass >= o.topP) break }
    }
    const kept = weights.slice(0, keep)
    let r = this.random() * kept.reduce((a, b) => a + b, 0)
    for (let i = 0; i < keep; i++) { r -= kept[i]; if (r <= 0) return order[i] }
    return order[keep - 1]
  }
}
