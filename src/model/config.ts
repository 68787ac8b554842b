// What the engine needs to know about a Llama-family model, whatever file it came from.
export type RopeStyle = 'interleaved' | 'neox'

export interface LlamaConfig {
  architecture: string
  dim: number
  hiddenDim: number
  nLayers: number
  nHeads: number
  nKvHeads: number
  headDim: number
  vocabSize: number
  contextLength: number
  normEps: number
  ropeTheta: number
  /** llama.cpp's "norm" rope rotates adjacent pairs (llama); "neox" rotates the two halves (qwen2). */
  ropeStyle: RopeStyle
  /** Linear position scaling (rope.scaling.type = linear): positions are divided by this. */
  ropeLinearFactor: number
  tiedEmbeddings: boolean
  qkvBias: boolean
}

/** Tensor names follow GGUF (llama.cpp) naming for every format. */
export const tensorNames = {
  embedding: 'token_embd.weight',
  outputNorm: 'output_norm.weight',
  output: 'output.weight',
  ropeFreqs: 'rope_freqs.weight',
  block: (i: number) => ({
    attnNorm: `blk.${i}.attn_norm.weight`,
    q: `blk.${i}.attn_q.weight`,
    k: `blk.${i}.attn_k.weight`,
    v: `blk.${i}.attn_v.weight`,
    qBias: `blk.${i}.attn_q.bias`,
    kBias: `blk.${i}.attn_k.bias`,
    vBias: `blk.${i}.attn_v.bias`,
    o: `blk.${i}.attn_output.weight`,
    ffnNorm: `blk.${i}.ffn_norm.weight`,
    gate: `blk.${i}.ffn_gate.weight`,
    up: `blk.${i}.ffn_up.weight`,
    down: `blk.${i}.ffn_down.weight`
  })
}
