// The ONNX graphs of the Llama stages, one function per layer operation, in llama2.c's order.
// Hidden states are [tokens, dim] (one sequence per engine). Weights arrive as [in, out]
// float32 (transposed at load) so every projection is a plain MatMul that ORT can prepack.
import type { LlamaConfig } from '../model/config.ts'
import { GraphBuilder } from './graph-builder.ts'
import { DataType } from './onnx-proto.ts'
import { f32ToF16 } from '../model/ggml-types.ts'

/** Weights in ggml blocks of 32 for MatMulNBits: packed [n][k/32][32*bits/8], one scale per block. */
export interface QuantizedMatrix { bits: 4 | 8, k: number, n: number, packed: Uint8Array, scales: Float32Array }

/** A projection: float32 [in, out], or kept quantized. */
export type Linear = Float32Array | QuantizedMatrix

export interface BlockWeights {
  attnNorm: Float32Array
  q: Linear, k: Linear, v: Linear, o: Linear
  qBias?: Float32Array, kBias?: Float32Array, vBias?: Float32Array
  ffnNorm: Float32Array
  gate: Linear, up: Linear, down: Linear
}

/** Names of the per-layer KV cache inputs/outputs of a block-range graph. */
export const kvNames = (layer: number) => ({
  pastK: `past_key.${layer}`, pastV: `past_value.${layer}`, presentK: `present_key.${layer}`, presentV: `present_value.${layer}`,
  newK: `new_key.${layer}`, newV: `new_value.${layer}`
})

/**
 * Shapes of the rope inputs: cos/sin broadcast against q/k viewed as pairs. Adjacent-pair rope
 * splits the head into [half, 2]; neox rope into [2, half].
 */
export function ropeShape (c: LlamaConfig, tokens: number | string): Array<number | string> {
  const half = c.headDim / 2
  return c.ropeStyle === 'interleaved' ? [tokens, 1, half, 1] : [tokens, 1, 1, half]
}

function rmsNorm (g: GraphBuilder, x: string, weight: WeightRef, eps: number): string {
  return g.op1('SimplifiedLayerNormalization', [x, weight.name], { axis: -1, epsilon: { float: eps }, stash_type: 1 })
}

/** A weight added to the graph: its initializer name, and how it is stored when not float32. */
interface WeightRef { name: string, packed?: QuantizedMatrix, half?: boolean, parts?: WeightRef[] }

export interface GraphOptions {
  /** The largest tensor the device takes (WebGPU buffer limits). */
  maxTensorBytes?: number
  /** Float projections as float16 (WebGPU with shader-f16): half the memory and bandwidth. */
  halfWeights?: boolean
  /** Fused attention: output only the step's new cache rows (see Runtime.cacheRowsOut). */
  cacheRowsOut?: boolean
}

function linear (g: GraphBuilder, x: string, weight: WeightRef, bias?: WeightRef): string {
  const y = weight.parts != null
    ? g.op1('Concat', weight.parts.map(p => linear(g, x, p)), { axis: -1 })
    : weight.packed != null
      ? quantizedMatMul(g, x, weight.name, weight.packed)
      : weight.half === true ? halfMatMul(g, x, weight.name) : g.op1('MatMul', [x, weight.name])
  return bias != null ? g.op1('Add', [y, bias.name]) : y
}

/**
 * A float16 projection of float32 activations: only the MatMul runs in half precision; norms,
 * rope, attention, the KV cache and the residual stream stay float32.
 */
function halfMatMul (g: GraphBuilder, x: string, name: string): string {
  const product = g.op1('MatMul', [g.op1('Cast', [x], { to: DataType.FLOAT16 }), name])
  return g.op1('Cast', [product], { to: DataType.FLOAT })
}

/**
 * MatMulNBits with accuracy level 4: activations are quantized to int8 per block, as llama.cpp
 * does for these weight types, and the dot products run in integers.
 */
function quantizedMatMul (g: GraphBuilder, x: string, name: string, m: QuantizedMatrix): string {
  return g.op('MatMulNBits', [x, `${name}.q`, `${name}.scales`], { K: m.k, N: m.n, bits: m.bits, block_size: 32, accuracy_level: 4 }, 1, 'com.microsoft')[0]
}

const linearBytes = (w: Linear): number => w instanceof Float32Array ? w.byteLength : w.packed.byteLength

function toHalf (w: Float32Array): Uint16Array {
  const bits = new Uint16Array(w.length)
  for (let i = 0; i < w.length; i++) bits[i] = f32ToF16(w[i])
  return bits
}

/**
 * Splits a projection into column groups (output channels) of at most `maxBytes` each: the
 * MatMuls of the parts, concatenated, compute exactly the same dot products.
 */
export function splitLinear (w: Linear, dims: number[], maxBytes: number): Linear[] {
  const [k, n] = dims
  const columnBytes = w instanceof Float32Array ? k * 4 : w.packed.byteLength / w.n
  const perPart = Math.floor(maxBytes / columnBytes)
  if (perPart < 1) throw new Error(`one output column of a ${k}x${n} projection (${columnBytes} bytes) exceeds this device's largest buffer (${maxBytes} bytes)`)
  const parts: Linear[] = []
  for (let c0 = 0; c0 < n; c0 += perPart) {
    const cols = Math.min(perPart, n - c0)
    if (w instanceof Float32Array) {
      const part = new Float32Array(k * cols)
      for (let r = 0; r < k; r++) part.set(w.subarray(r * n + c0, r * n + c0 + cols), r * cols)
      parts.push(part)
    } else {
      const rowBytes = w.packed.byteLength / w.n
      const rowScales = w.scales.length / w.n
      parts.push({ bits: w.bits, k: w.k, n: cols, packed: w.packed.slice(c0 * rowBytes, (c0 + cols) * rowBytes), scales: w.scales.slice(c0 * rowScales, (c0 + cols) * rowScales) })
    }
  }
  return parts
}

function addWeight (g: GraphBuilder, name: string, w: Linear, dims: number[], opts: GraphOptions = {}): WeightRef {
  const half = opts.halfWeights === true && dims.length === 2 && w instanceof Float32Array
  // splitLinear measures float32 columns; a half column is half that.
  const scale = half ? 2 : 1
  if (dims.length === 2 && opts.maxTensorBytes != null && linearBytes(w) > opts.maxTensorBytes * scale) {
    const parts = splitLinear(w, dims, opts.maxTensorBytes * scale)
    return { name, parts: parts.map((p, i) => addWeight(g, `${name}.part${i}`, p, [dims[0], p instanceof Float32Array ? p.length / dims[0] : p.n], { halfWeights: opts.halfWeights })) }
  }
  if (half) return { name: g.half(name, toHalf(w), dims), half: true }
  if (w instanceof Float32Array) return { name: g.weight(name, w, dims) }
  g.bytes(`${name}.q`, w.packed, [w.n, w.k / 32, 4 * w.bits])
  g.weight(`${name}.scales`, w.scales, [w.scales.length])
  return { name, packed: w }
}

/** Rotates q or k ([tokens, heads*headDim]) by position; returns [tokens, heads, headDim]. */
function rope (g: GraphBuilder, c: LlamaConfig, x: string, heads: number, cos: string, sin: string): string {
  const half = c.headDim / 2
  const pairAxis = c.ropeStyle === 'interleaved' ? 3 : 2
  const shape = c.ropeStyle === 'interleaved' ? [-1, heads, half, 2] : [-1, heads, 2, half]
  const pairs = g.op1('Reshape', [x, g.ints(shape)])
  const [a, b] = g.op('Split', [pairs, g.ints([1, 1])], { axis: pairAxis }, 2)
  const ra = g.op1('Sub', [g.op1('Mul', [a, cos]), g.op1('Mul', [b, sin])])
  const rb = g.op1('Add', [g.op1('Mul', [a, sin]), g.op1('Mul', [b, cos])])
  const rotated = g.op1('Concat', [ra, rb], { axis: pairAxis })
  return g.op1('Reshape', [rotated, g.ints([-1, heads, c.headDim])])
}

/**
 * Grouped-query attention with plain ops. Query heads sharing a KV head are stacked along the
 * token axis ([kvHeads, group*tokens, headDim]), so one batched MatMul serves the whole group;
 * `mask` is the additive causal mask for those stacked rows ([group*tokens, past+tokens]).
 */
function attention (g: GraphBuilder, c: LlamaConfig, layer: number, x: string, w: Record<string, WeightRef>, cos: string, sin: string, mask: string): string {
  const kv = kvNames(layer)
  const q = rope(g, c, linear(g, x, w.q, w.qBias), c.nHeads, cos, sin)
  const k = rope(g, c, linear(g, x, w.k, w.kBias), c.nKvHeads, cos, sin)
  const v = g.op1('Reshape', [linear(g, x, w.v, w.vBias), g.ints([-1, c.nKvHeads, c.headDim])])
  const headsFirst = (t: string): string => g.op1('Transpose', [t], { perm: [1, 0, 2] })
  const keys = g.op1('Concat', [kv.pastK, headsFirst(k)], { axis: 1 }, kv.presentK)
  const values = g.op1('Concat', [kv.pastV, headsFirst(v)], { axis: 1 }, kv.presentV)
  const grouped = g.op1('Reshape', [headsFirst(q), g.ints([c.nKvHeads, -1, c.headDim])])
  const scores = g.op1('MatMul', [grouped, g.op1('Transpose', [keys], { perm: [0, 2, 1] })])
  const scaled = g.op1('Add', [g.op1('Mul', [scores, g.scalar(1 / Math.sqrt(c.headDim))]), mask])
  const probs = g.op1('Softmax', [scaled], { axis: -1 })
  const mixed = g.op1('Reshape', [g.op1('MatMul', [probs, values]), g.ints([c.nHeads, -1, c.headDim])])
  const merged = g.op1('Reshape', [headsFirst(mixed), g.ints([-1, c.nHeads * c.headDim])])
  return linear(g, merged, w.o)
}

function feedForward (g: GraphBuilder, x: string, w: Record<string, WeightRef>): string {
  const gate = linear(g, x, w.gate)
  const silu = g.op1('Mul', [gate, g.op1('Sigmoid', [gate])])
  return linear(g, g.op1('Mul', [silu, linear(g, x, w.up)]), w.down)
}

function block (g: GraphBuilder, c: LlamaConfig, layer: number, x: string, weights: BlockWeights, cos: string, sin: string, mask: string, opts: GraphOptions): string {
  const w: Record<string, WeightRef> = {}
  for (const [name, data] of Object.entries(weights)) {
    if (data == null) continue
    w[name] = addWeight(g, `blk.${layer}.${name}`, data, weightDims(c, name), opts)
  }
  const h = g.op1('Add', [x, attention(g, c, layer, rmsNorm(g, x, w.attnNorm, c.normEps), w, cos, sin, mask)])
  return g.op1('Add', [h, feedForward(g, rmsNorm(g, h, w.ffnNorm, c.normEps), w)])
}

function weightDims (c: LlamaConfig, name: string): number[] {
  const q = c.nHeads * c.headDim
  const kv = c.nKvHeads * c.headDim
  const dims: Record<string, number[]> = {
    attnNorm: [c.dim], ffnNorm: [c.dim], q: [c.dim, q], k: [c.dim, kv], v: [c.dim, kv], o: [q, c.dim],
    qBias: [q], kBias: [kv], vBias: [kv], gate: [c.dim, c.hiddenDim], up: [c.dim, c.hiddenDim], down: [c.hiddenDim, c.dim]
  }
  return dims[name]
}

/** Concatenates projections along the output axis (one MatMul instead of several). */
export function concatLinear (parts: Linear[], dim: number): Linear {
  if (parts.every(p => p instanceof Float32Array)) {
    const outs = parts.map(p => p.length / dim)
    const total = outs.reduce((a, b) => a + b)
    const out = new Float32Array(dim * total)
    for (let r = 0; r < dim; r++) {
      let col = 0
      parts.forEach((p, i) => { out.set(p.subarray(r * outs[i], (r + 1) * outs[i]), r * total + col); col += outs[i] })
    }
    return out
  }
  if (parts.every(p => !(p instanceof Float32Array) && p.bits === (parts[0] as QuantizedMatrix).bits)) {
    // MatMulNBits rows are output channels: concatenating along N appends rows and scales.
    const qs = parts as QuantizedMatrix[]
    const packed = new Uint8Array(qs.reduce((a, q) => a + q.packed.length, 0))
    const scales = new Float32Array(qs.reduce((a, q) => a + q.scales.length, 0))
    let po = 0
    let so = 0
    for (const q of qs) { packed.set(q.packed, po); scales.set(q.scales, so); po += q.packed.length; so += q.scales.length }
    return { bits: qs[0].bits, k: qs[0].k, n: qs.reduce((a, q) => a + q.n, 0), packed, scales }
  }
  throw new Error('cannot fuse projections stored in different encodings')
}

const sameEncoding = (parts: Linear[]): boolean => parts.every(p => p instanceof Float32Array) ||
  parts.every(p => !(p instanceof Float32Array) && p.bits === (parts[0] as QuantizedMatrix).bits)
const outputs = (w: Linear, dim: number): number => w instanceof Float32Array ? w.length / dim : w.n

/**
 * Projections of one input as one weight (one MatMul); when they are stored differently (a
 * packed Q8_0 q next to a dequantized Q6_K v) each keeps its own MatMul and the outputs are
 * concatenated.
 */
function fusedWeight (g: GraphBuilder, name: string, parts: Linear[], dim: number, opts: GraphOptions): WeightRef {
  const n = parts.reduce((a, p) => a + outputs(p, dim), 0)
  if (sameEncoding(parts)) return addWeight(g, name, concatLinear(parts, dim), [dim, n], opts)
  return { name, parts: parts.map((p, i) => addWeight(g, `${name}.${i}`, p, [dim, outputs(p, dim)], opts)) }
}

const concatBias = (parts: Array<Float32Array | undefined>): Float32Array | undefined =>
  parts.some(p => p == null) ? undefined : Float32Array.from(parts.flatMap(p => Array.from(p as Float32Array)))

/**
 * A block with ORT's fused GroupQueryAttention (CPU): one MatMul for q, k and v, rotary
 * embedding from cos/sin tables fed once per cache size, and a fixed-size KV cache
 * [1, kvHeads, capacity, headDim] that the kernel updates in place when the caller binds the
 * same tensor as past input and present output.
 */
function fusedBlock (g: GraphBuilder, c: LlamaConfig, layer: number, x: string, wt: BlockWeights, seqlensK: string, totalLen: string, cos: string, sin: string, opts: GraphOptions): string {
  const q = c.nHeads * c.headDim
  const kvDim = c.nKvHeads * c.headDim
  const name = `blk.${layer}`
  const attnNorm = addWeight(g, `${name}.attnNorm`, wt.attnNorm, [c.dim])
  const ffnNorm = addWeight(g, `${name}.ffnNorm`, wt.ffnNorm, [c.dim])
  const qkv = fusedWeight(g, `${name}.qkv`, [wt.q, wt.k, wt.v], c.dim, opts)
  const bias = concatBias([wt.qBias, wt.kBias, wt.vBias])
  const qkvBias = bias != null ? { name: g.weight(`${name}.qkvBias`, bias, [bias.length]) } : undefined
  const o = addWeight(g, `${name}.o`, wt.o, [q, c.dim], opts)
  const kv = kvNames(layer)
  const packedQkv = linear(g, rmsNorm(g, x, attnNorm, c.normEps), qkv, qkvBias)
  const [attn] = g.op('GroupQueryAttention', [packedQkv, '', '', kv.pastK, kv.pastV, seqlensK, totalLen, cos, sin], {
    num_heads: c.nHeads, kv_num_heads: c.nKvHeads, do_rotary: 1, rotary_interleaved: c.ropeStyle === 'interleaved' ? 1 : 0, scale: { float: 1 / Math.sqrt(c.headDim) }
  }, [`attn_${layer}`, kv.presentK, kv.presentV], 'com.microsoft')
  const h = g.op1('Add', [x, linear(g, attn, o)])
  // gate and up share their input: one MatMul, split in two.
  const gateUp = fusedWeight(g, `${name}.gateUp`, [wt.gate, wt.up], c.dim, opts)
  const down = addWeight(g, `${name}.down`, wt.down, [c.hiddenDim, c.dim], opts)
  const [gate, up] = g.op('Split', [linear(g, rmsNorm(g, h, ffnNorm, c.normEps), gateUp), g.ints([c.hiddenDim, c.hiddenDim])], { axis: -1 }, 2)
  const silu = g.op1('Mul', [gate, g.op1('Sigmoid', [gate])])
  return g.op1('Add', [h, linear(g, g.op1('Mul', [silu, up]), down)])
}

/**
 * Fused-attention graph for blocks [first, last]: hidden [T, dim], `seqlens_k` ([1] int32, the
 * total length minus one), `total_sequence_length` (int32 scalar), `rope_cos`/`rope_sin`
 * [capacity, headDim/2], and per layer a KV cache [1, kvHeads, capacity, headDim]. With
 * `cacheRowsOut` the present caches stay inside the graph and each layer outputs only the rows
 * of this step, positions `cache_start` to `cache_end` (int64 [1] inputs), [1, kvHeads, T, headDim].
 */
export function buildFusedBlocksGraph (c: LlamaConfig, first: number, blocks: BlockWeights[], opts: GraphOptions = {}): Uint8Array {
  const g = new GraphBuilder()
  const hidden = g.input('hidden', ['tokens', c.dim])
  const seqlensK = g.input('seqlens_k', [1], DataType.INT32)
  const totalLen = g.input('total_sequence_length', [], DataType.INT32)
  const cos = g.input('rope_cos', ['capacity', c.headDim / 2])
  const sin = g.input('rope_sin', ['capacity', c.headDim / 2])
  const rows = opts.cacheRowsOut === true ? [g.input('cache_start', [1], DataType.INT64), g.input('cache_end', [1], DataType.INT64), g.ints([2])] : undefined
  let x = g.op1('Reshape', [hidden, g.ints([1, -1, c.dim])])
  blocks.forEach((weights, i) => {
    const kv = kvNames(first + i)
    g.input(kv.pastK, [1, c.nKvHeads, 'capacity', c.headDim])
    g.input(kv.pastV, [1, c.nKvHeads, 'capacity', c.headDim])
    x = fusedBlock(g, c, first + i, x, weights, seqlensK, totalLen, cos, sin, opts)
    if (rows != null) {
      g.op('Slice', [kv.presentK, ...rows], {}, [kv.newK])
      g.op('Slice', [kv.presentV, ...rows], {}, [kv.newV])
      g.output(kv.newK, [1, c.nKvHeads, 'tokens', c.headDim])
      g.output(kv.newV, [1, c.nKvHeads, 'tokens', c.headDim])
    } else {
      g.output(kv.presentK, [1, c.nKvHeads, 'capacity', c.headDim])
      g.output(kv.presentV, [1, c.nKvHeads, 'capacity', c.headDim])
    }
  })
  g.op1('Reshape', [x, g.ints([-1, c.dim])], {}, 'hidden_out')
  g.output('hidden_out', ['tokens', c.dim])
  return g.encode()
}

/** Graph for blocks [first, last]: hidden [T, dim] in, hidden out, one KV cache pair per layer. */
export function buildBlocksGraph (c: LlamaConfig, first: number, blocks: BlockWeights[], opts: GraphOptions = {}): Uint8Array {
  const g = new GraphBuilder()
  let x = g.input('hidden', ['tokens', c.dim])
  const cos = g.input('rope_cos', ropeShape(c, 'tokens'))
  const sin = g.input('rope_sin', ropeShape(c, 'tokens'))
  const mask = g.input('mask', ['group_rows', 'total'])
  blocks.forEach((weights, i) => {
    const kv = kvNames(first + i)
    g.input(kv.pastK, [c.nKvHeads, 'past', c.headDim])
    g.input(kv.pastV, [c.nKvHeads, 'past', c.headDim])
    x = block(g, c, first + i, x, weights, cos, sin, mask, opts)
    g.output(kv.presentK, [c.nKvHeads, 'total', c.headDim])
    g.output(kv.presentV, [c.nKvHeads, 'total', c.headDim])
  })
  g.op1('Identity', [x], {}, 'hidden_out')
  g.output('hidden_out', ['tokens', c.dim])
  return g.encode()
}

/** Graph for the final norm and output head: hidden [T, dim] -> logits [T, vocab]. */
export function buildHeadGraph (c: LlamaConfig, norm: Float32Array, output: Linear, opts: GraphOptions = {}): Uint8Array {
  const g = new GraphBuilder()
  const x = g.input('hidden', ['tokens', c.dim])
  const normed = rmsNorm(g, x, addWeight(g, 'output_norm', norm, [c.dim]), c.normEps)
  g.op1('Identity', [linear(g, normed, addWeight(g, 'output', output, [c.dim, c.vocabSize], opts))], {}, 'logits')
  g.output('logits', ['tokens', c.vocabSize])
  return g.encode()
}
