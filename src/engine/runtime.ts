// What the engine needs from an onnxruntime flavour; ort.ts (Node) and ort.browser.ts provide it.
import type * as OrtCommon from 'onnxruntime-common'

export type Backend = 'cpu' | 'webgpu' | 'wasm'

export interface RuntimeOptions {
  /** Browser only: force a backend instead of WebGPU-when-available. */
  backend?: Backend
  /** CPU threads for ORT's intra-op pool (0 = ORT's default). */
  threads?: number
  /** Node only: let idle pool threads spin (off by default: it stalls decode on shared cores). */
  spinThreads?: boolean
  /**
   * Node: keep Q8_0/Q4_0 weights packed and multiply with int8 activations (MatMulNBits,
   * accuracy level 4), as llama.cpp does for these types. Default on in Node: 2-3x faster decode
   * (a quarter of the bytes per token); the activation rounding moves logits by ~1%, so
   * `packedMatMul: false` (dequantize to float32 at load) remains for exact float32 results.
   * Float weights (F32, F16, K-quants) are float32 either way.
   */
  packedMatMul?: boolean
  /**
   * ORT's GroupQueryAttention with fused q/k/v and a fixed-size KV cache updated in place,
   * instead of plain attention ops and a cache that grows by Concat. Default on in Node and on
   * WebGPU (where the cache stays in GPU buffers); WASM keeps plain ops, because it copies every
   * input into its heap and so could not update a cache in place.
   */
  fusedAttention?: boolean
  /**
   * Float projections as float16 weights: half the memory and bandwidth. Default: on where
   * WebGPU offers shader-f16, off elsewhere (CPU and WASM run float16 MatMul slower than float32).
   */
  halfWeights?: boolean
}

export interface Runtime {
  ort: typeof OrtCommon
  backend: Backend
  createSession: (model: Uint8Array, outputsOnDevice?: string[]) => Promise<OrtCommon.InferenceSession>
  /** Keep Q8_0/Q4_0 weights packed for MatMulNBits (fast on ORT's CPU provider, slow on WASM). */
  packedMatMul: boolean
  /** Blocks use fused GroupQueryAttention and an in-place fixed-size KV cache (see RuntimeOptions). */
  fusedAttention?: boolean
  /**
   * Fused attention returns only each step's new cache rows, which the engine writes into the
   * cache, instead of binding the cache as an output updated in place. onnxruntime-node copies
   * every output back into a fresh ArrayBuffer, bound ones included: each step's copy of every
   * whole cache was garbage that set off V8's major GCs, a quarter of a host's CPU (four blocks
   * of the swarm bench's Q8_0 model: 12.5 ms of CPU per decode step, 9 ms with rows out). Inside
   * the graph the kernel copies the past into its present, from ORT's own arena.
   */
  cacheRowsOut?: boolean
  /** Where the fixed-size caches of fused attention live when not in CPU memory (WebGPU). */
  cacheStore?: CacheStore
  /**
   * Most query tokens one fused-attention call may take: ORT's GroupQueryAttention on WebGPU
   * returned wrong output from 32 query tokens per call on (decode and the cache were right).
   */
  maxFusedTokens?: number
  /** Float projections are float16 (see RuntimeOptions). */
  halfWeights?: boolean
  /** Largest single buffer the device accepts (WebGPU), so loaders can refuse or split. */
  maxBufferBytes?: number
}

/**
 * Storage of one fixed-size cache tensor [1, heads, capacity, headDim] (float32). `grow` returns
 * a zeroed tensor of the new capacity holding the first `rows` positions of each head of `old`
 * (whose capacity was `oldCapacity`), and disposes `old`.
 */
export interface CacheStore {
  grow: (old: OrtCommon.Tensor | undefined, heads: number, oldCapacity: number, capacity: number, rows: number, headDim: number) => Promise<OrtCommon.Tensor>
}
