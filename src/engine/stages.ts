// The three kinds of stage an engine can host: the token embedding, a contiguous range of
// transformer blocks (with its own KV cache), and the final norm + output head. Hidden states
// pass between them as Float32Array [tokens, dim], so ranges can live in different agents.
import type * as OrtCommon from 'onnxruntime-common'
import type { LlamaConfig } from '../model/config.ts'
import { tensorNames } from '../model/config.ts'
import { readTensor, RowReader, tensorRef, type ModelFile } from '../model/model-file.ts'
import { buildBlocksGraph, buildFusedBlocksGraph, buildHeadGraph, kvNames, ropeShape, type BlockWeights, type GraphOptions, type Linear } from './llama-graph.ts'
import { causalMask, ropeTables } from './rope.ts'
import { MAX_GRAPH_BYTES, blockBytes, graphSegments } from './memory.ts'
import type { CacheStore, Runtime } from './runtime.ts'
import { readBlockWeights, readLinear } from './weights.ts'

/**
 * A WebGPU device refuses buffers over its limits: projections larger than that are split into
 * column groups (see splitLinear); anything that cannot be split must fit, or we say which
 * tensor does not, before trying.
 */
function checkBufferLimit (runtime: Runtime, name: string, data: Linear | undefined, splittable: boolean): void {
  const bytes = data == null ? 0 : data instanceof Float32Array ? data.byteLength : data.packed.byteLength
  if (!splittable && runtime.maxBufferBytes != null && bytes > runtime.maxBufferBytes) {
    throw new Error(`tensor ${name}: ${bytes} bytes exceeds this device's largest buffer (${runtime.maxBufferBytes} bytes)`)
  }
}

const graphOptions = (runtime: Runtime): GraphOptions => ({ maxTensorBytes: runtime.maxBufferBytes, halfWeights: runtime.halfWeights, cacheRowsOut: runtime.cacheRowsOut })

export class Embedding {
  private constructor (readonly config: LlamaConfig, private readonly rows: RowReader) {}

  /** Keeps the table in its file encoding and dequantizes only the rows looked up. */
  static async load (model: ModelFile): Promise<Embedding> {
    const ref = tensorRef(model, tensorNames.embedding)
    return new Embedding(model.config, new RowReader(ref, await model.source.read(ref.offset, ref.byteLength)))
  }

  embed (ids: number[]): Float32Array {
    const out = new Float32Array(ids.length * this.config.dim)
    ids.forEach((id, t) => out.set(this.rows.row(id), t * this.config.dim))
    return out
  }
}

/** Fixed-size caches in CPU memory (Node: ORT's CPU provider updates them in place). */
export function cpuCacheStore (ort: Runtime['ort']): CacheStore {
  return {
    async grow (old, heads, oldCapacity, capacity, rows, headDim) {
      const data = new Float32Array(heads * capacity * headDim)
      if (old != null) {
        const src = old.data as Float32Array
        for (let h = 0; h < heads; h++) data.set(src.subarray(h * oldCapacity * headDim, (h * oldCapacity + rows) * headDim), h * capacity * headDim)
        old.dispose()
      }
      return new ort.Tensor('float32', data, [1, heads, capacity, headDim])
    }
  }
}

/**
 * One sequence's keys and values for a range's blocks. A range serving several sessions at
 * once (a shard server) holds one cache per session over the same weights.
 *
 * With fused attention (Node, WebGPU) each layer's cache is a fixed-size tensor
 * [1, kvHeads, capacity, headDim] that the graph updates in place, in CPU memory or in a GPU
 * buffer (Runtime.cacheStore); it grows (one copy) when a step would overflow it.
 * Otherwise each step returns a new [kvHeads, tokens, headDim] tensor one step longer.
 */
export class KvCache {
  /** Tokens already in this cache. */
  position = 0
  /** Tokens the fixed-size cache holds before it must grow (0 until first used, or unfused). */
  capacity = 0
  readonly tensors = new Map<string, OrtCommon.Tensor>()

  constructor (private readonly range: { first: number, last: number, config: LlamaConfig, ort: Runtime['ort'], fused?: boolean, store: CacheStore }) {
    this.reset()
  }

  reset (): void {
    this.position = 0
    // A fixed-size cache is reused as it is: positions past `position` are never read.
    if (this.range.fused === true) return
    this.dispose()
    const { Tensor } = this.range.ort
    const c = this.range.config
    for (let i = this.range.first; i <= this.range.last; i++) {
      const kv = kvNames(i)
      this.tensors.set(kv.pastK, new Tensor('float32', new Float32Array(0), [c.nKvHeads, 0, c.headDim]))
      this.tensors.set(kv.pastV, new Tensor('float32', new Float32Array(0), [c.nKvHeads, 0, c.headDim]))
    }
  }

  /** Fused layout: makes room for `tokens` more positions, growing the buffers if needed. */
  async reserve (tokens: number): Promise<void> {
    const need = this.position + tokens
    if (this.range.fused !== true || need <= this.capacity) return
    const c = this.range.config
    const step = KvCache.growthStep
    const capacity = Math.min(Math.ceil(need / step) * step, c.contextLength)
    for (let i = this.range.first; i <= this.range.last; i++) {
      const kv = kvNames(i)
      for (const name of [kv.pastK, kv.pastV]) {
        this.tensors.set(name, await this.range.store.grow(this.tensors.get(name), c.nKvHeads, this.capacity, capacity, this.position, c.headDim))
      }
    }
    this.capacity = capacity
  }

  /**
   * Positions a fixed-size cache grows by, so its capacity stays close to what it holds: memory
   * is taken as a session fills, not when it opens. Where the cache is also a bound output of
   * each step (WebGPU), a step's cost grows with the capacity; when onnxruntime-node still did
   * that, a decode step of the swarm bench's Q8_0 model took 7.9 ms with room for 64 positions
   * and 11.9 ms with room for 512 (with rows out, 7.0 and 7.6). Growing copies the cache once,
   * every `growthStep` tokens.
   */
  static growthStep = 32

  /** Copies `tokens` new positions [heads, tokens, headDim] into a CPU cache tensor at `position`. */
  writeRows (name: string, rows: Float32Array, position: number, tokens: number): void {
    const c = this.range.config
    const data = this.tensors.get(name)!.data as Float32Array
    const span = tokens * c.headDim
    for (let h = 0; h < c.nKvHeads; h++) data.set(rows.subarray(h * span, (h + 1) * span), (h * this.capacity + position) * c.headDim)
  }

  /** Bytes one token adds to a cache of this range (keys and values, f32). */
  static bytesPerToken (config: LlamaConfig, blocks: number): number {
    return 2 * blocks * config.nKvHeads * config.headDim * 4
  }

  dispose (): void {
    for (const t of this.tensors.values()) t.dispose()
    this.tensors.clear()
    this.capacity = 0
  }
}

/** A run of blocks of a range that one session holds. */
interface Segment { first: number, last: number, session: OrtCommon.InferenceSession }

export class BlockRange {
  private readonly own: KvCache

  private constructor (
    readonly config: LlamaConfig,
    readonly first: number,
    readonly last: number,
    private readonly runtime: Runtime,
    private readonly segments: Segment[],
    private readonly freqFactors?: Float32Array,
    private readonly fused = false
  ) {
    this.own = this.newCache()
  }

  /** Most weight bytes one session holds (MAX_GRAPH_BYTES; tests lower it to split small models). */
  static maxGraphBytes = MAX_GRAPH_BYTES

  /** What one ONNX graph can hold at all (a protobuf message): a block beyond it cannot load. */
  static graphLimitBytes = 2 ** 31 - 1

  /** Loads blocks first..last (inclusive, 0-based): only their tensors are read. */
  static async load (model: ModelFile, first: number, last: number, runtime: Runtime): Promise<BlockRange> {
    const c = model.config
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last < first || last >= c.nLayers) {
      throw new Error(`layer range ${first}-${last} is outside the model's blocks 0-${c.nLayers - 1}`)
    }
    // ORT's GroupQueryAttention wants head sizes in multiples of 16 (stories260K has 8).
    const fused = runtime.fusedAttention === true && c.headDim % 16 === 0
    const encoding = { packedMatMul: runtime.packedMatMul, halfWeights: runtime.halfWeights }
    for (let i = first; i <= last; i++) {
      const size = blockBytes(model, i, encoding)
      if (size > BlockRange.graphLimitBytes) throw new Error(`block ${i}: its weights take ${(size / 2 ** 20).toFixed(1)} MiB in one ONNX graph, over the ${(BlockRange.graphLimitBytes / 2 ** 20).toFixed(1)} MiB a graph can hold; this engine cannot load blocks that large`)
    }
    const segments: Segment[] = []
    try {
      for (const { first: start, last: end } of graphSegments(model, first, last, encoding, BlockRange.maxGraphBytes)) {
        const blocks: BlockWeights[] = []
        for (let i = start; i <= end; i++) {
          const weights = await readBlockWeights(model, i, runtime.packedMatMul)
          for (const [name, data] of Object.entries(weights)) checkBufferLimit(runtime, `blk.${i}.${name}`, data, !/Norm|Bias/.test(name))
          blocks.push(weights)
        }
        const graph = fused ? buildFusedBlocksGraph(c, start, blocks, graphOptions(runtime)) : buildBlocksGraph(c, start, blocks, graphOptions(runtime))
        blocks.length = 0
        const names = []
        for (let i = start; i <= end; i++) names.push(kvNames(i).presentK, kvNames(i).presentV)
        segments.push({ first: start, last: end, session: await runtime.createSession(graph, names) })
      }
    } catch (err) {
      for (const s of segments) await s.session.release()
      throw err
    }
    const freqFactors = model.tensors.has(tensorNames.ropeFreqs) ? await readTensor(model, tensorNames.ropeFreqs) : undefined
    return new BlockRange(c, first, last, runtime, segments, freqFactors, fused)
  }

  /** How many sessions hold this range's blocks (see maxGraphBytes). */
  get sessions (): number {
    return this.segments.length
  }

  /** 'fused': GroupQueryAttention with an in-place fixed-size cache; 'ops': plain attention ops. */
  get attention (): 'fused' | 'ops' {
    return this.fused ? 'fused' : 'ops'
  }

  /** Tokens already in this range's own KV cache (the one used when no cache is passed). */
  get position (): number {
    return this.own.position
  }

  newCache (): KvCache {
    return new KvCache({ first: this.first, last: this.last, config: this.config, ort: this.runtime.ort, fused: this.fused, store: this.runtime.cacheStore ?? cpuCacheStore(this.runtime.ort) })
  }

  reset (): void {
    this.own.reset()
  }

  /** Most tokens one call runs, so a long prefill's activations stay bounded. */
  static maxCallTokens = 256

  /**
   * Runs `tokens` new positions through the range, appending them to the KV cache; a long
   * prefill goes in calls of at most maxCallTokens, and of fewer where the runtime's fused
   * attention needs it.
   */
  async forward (hidden: Float32Array, tokens: number, cache: KvCache = this.own): Promise<Float32Array> {
    const c = this.config
    if (hidden.length !== tokens * c.dim) throw new Error(`blocks ${this.first}-${this.last}: hidden state has ${hidden.length} values, expected ${tokens} x ${c.dim}`)
    if (cache.position + tokens > c.contextLength) throw new Error(`context full: ${cache.position} + ${tokens} tokens exceeds the model's context of ${c.contextLength}`)
    const most = Math.min(BlockRange.maxCallTokens, this.fused ? this.runtime.maxFusedTokens ?? tokens : tokens)
    const call = async (x: Float32Array, n: number): Promise<Float32Array> => this.fused ? await this.forwardFused(x, n, cache) : await this.forwardOps(x, n, cache)
    if (tokens <= most) return await call(hidden, tokens)
    const out = new Float32Array(hidden.length)
    for (let t = 0; t < tokens; t += most) {
      const n = Math.min(most, tokens - t)
      out.set(await call(hidden.slice(t * c.dim, (t + n) * c.dim), n), t * c.dim)
    }
    return out
  }

  private async forwardOps (hidden: Float32Array, tokens: number, cache: KvCache): Promise<Float32Array> {
    const c = this.config
    const { Tensor } = this.runtime.ort
    const { cos, sin } = ropeTables(c, cache.position, tokens, this.freqFactors)
    const group = c.nHeads / c.nKvHeads
    const ropeDims = ropeShape(c, tokens) as number[]
    const feeds: Record<string, OrtCommon.Tensor> = {
      rope_cos: new Tensor('float32', cos, ropeDims),
      rope_sin: new Tensor('float32', sin, ropeDims),
      mask: new Tensor('float32', causalMask(cache.position, tokens, group), [group * tokens, cache.position + tokens])
    }
    let x = hidden
    for (const segment of this.segments) {
      const layerFeeds: Record<string, OrtCommon.Tensor> = { ...feeds, hidden: new Tensor('float32', x, [tokens, c.dim]) }
      for (let i = segment.first; i <= segment.last; i++) {
        const kv = kvNames(i)
        layerFeeds[kv.pastK] = cache.tensors.get(kv.pastK) as OrtCommon.Tensor
        layerFeeds[kv.pastV] = cache.tensors.get(kv.pastV) as OrtCommon.Tensor
      }
      const out = await segment.session.run(layerFeeds)
      for (let i = segment.first; i <= segment.last; i++) {
        const kv = kvNames(i)
        cache.tensors.get(kv.pastK)?.dispose()
        cache.tensors.get(kv.pastV)?.dispose()
        cache.tensors.set(kv.pastK, out[kv.presentK])
        cache.tensors.set(kv.pastV, out[kv.presentV])
      }
      x = await out.hidden_out.getData() as Float32Array
      out.hidden_out.dispose()
    }
    cache.position += tokens
    return x
  }

  /**
   * Rotary tables for positions 0..rows-1, rows a power of two (so a growing cache recomputes
   * them rarely, and a long-context model does not hold tables for positions it never reaches);
   * each step sees rows 0..capacity-1.
   */
  private ropeTable?: { rows: number, cos: Float32Array, sin: Float32Array }
  private rope?: { capacity: number, cos: OrtCommon.Tensor, sin: OrtCommon.Tensor }

  private ropeFor (capacity: number): { cos: OrtCommon.Tensor, sin: OrtCommon.Tensor } {
    if (this.rope?.capacity !== capacity) {
      if (this.ropeTable == null || this.ropeTable.rows < capacity) {
        const rows = Math.min(this.config.contextLength, 2 ** Math.ceil(Math.log2(capacity)))
        this.ropeTable = { rows, ...ropeTables(this.config, 0, rows, this.freqFactors) }
      }
      const half = this.config.headDim / 2
      const dims = [capacity, half]
      const { Tensor } = this.runtime.ort
      this.rope = { capacity, cos: new Tensor('float32', this.ropeTable.cos.subarray(0, capacity * half), dims), sin: new Tensor('float32', this.ropeTable.sin.subarray(0, capacity * half), dims) }
    }
    return this.rope
  }

  private async forwardFused (hidden: Float32Array, tokens: number, cache: KvCache): Promise<Float32Array> {
    const { Tensor } = this.runtime.ort
    await cache.reserve(tokens)
    const start = cache.position
    const total = start + tokens
    const { cos, sin } = this.ropeFor(cache.capacity)
    const rowsOut = this.runtime.cacheRowsOut === true
    const feeds: Record<string, OrtCommon.Tensor> = {
      seqlens_k: new Tensor('int32', Int32Array.of(total - 1), [1]),
      total_sequence_length: new Tensor('int32', Int32Array.of(total), []),
      rope_cos: cos,
      rope_sin: sin,
      ...(rowsOut ? { cache_start: new Tensor('int64', BigInt64Array.of(BigInt(start)), [1]), cache_end: new Tensor('int64', BigInt64Array.of(BigInt(total)), [1]) } : {})
    }
    let x = hidden
    for (const segment of this.segments) {
      const layerFeeds: Record<string, OrtCommon.Tensor> = { ...feeds, hidden: new Tensor('float32', x, [tokens, this.config.dim]) }
      for (let i = segment.first; i <= segment.last; i++) {
        const kv = kvNames(i)
        layerFeeds[kv.pastK] = cache.tensors.get(kv.pastK) as OrtCommon.Tensor
        layerFeeds[kv.pastV] = cache.tensors.get(kv.pastV) as OrtCommon.Tensor
      }
      if (rowsOut) {
        const out = await segment.session.run(layerFeeds)
        for (let i = segment.first; i <= segment.last; i++) {
          const kv = kvNames(i)
          cache.writeRows(kv.pastK, out[kv.newK].data as Float32Array, start, tokens)
          cache.writeRows(kv.pastV, out[kv.newV].data as Float32Array, start, tokens)
        }
        x = out.hidden_out.data as Float32Array
      } else {
        // The present outputs are bound to the past inputs' buffers: the kernel writes only the
        // new positions, in place.
        const fetches: Record<string, OrtCommon.Tensor | null> = { hidden_out: null }
        for (let i = segment.first; i <= segment.last; i++) {
          const kv = kvNames(i)
          fetches[kv.presentK] = layerFeeds[kv.pastK]
          fetches[kv.presentV] = layerFeeds[kv.pastV]
        }
        x = (await segment.session.run(layerFeeds, fetches)).hidden_out.data as Float32Array
      }
    }
    cache.position = total
    return x
  }

  async release (): Promise<void> {
    this.own.dispose()
    for (const s of this.segments) await s.session.release()
  }
}

export class Head {
  private constructor (readonly config: LlamaConfig, private readonly runtime: Runtime, private readonly session: OrtCommon.InferenceSession) {}

  static async load (model: ModelFile, runtime: Runtime): Promise<Head> {
    const c = model.config
    const outputName = c.tiedEmbeddings ? tensorNames.embedding : tensorNames.output
    const output = await readLinear(model, outputName, runtime.packedMatMul)
    const graph = buildHeadGraph(c, await readTensor(model, tensorNames.outputNorm), output, graphOptions(runtime))
    return new Head(c, runtime, await runtime.createSession(graph))
  }

  /** Logits [tokens, vocab] for the given hidden states (pass only the rows you need). */
  async logits (hidden: Float32Array, tokens: number): Promise<Float32Array> {
    const out = await this.session.run({ hidden: new this.runtime.ort.Tensor('float32', hidden, [tokens, this.config.dim]) })
    return await out.logits.getData() as Float32Array
  }

  async release (): Promise<void> { await this.session.release() }
}
