// The three kinds of stage an engine can host: the token embedding, a contiguous range of
// transformer blocks (with its own KV cache), and the final norm + output head. Hidden states
// pass between them as Float32Array [tokens, dim], so ranges can live in different agents.
import type * as OrtCommon from 'onnxruntime-common'
import type { LlamaConfig } from '../model/config.ts'
import { tensorNames } from '../model/config.ts'
import { readTensor, RowReader, tensorRef, type ModelFile } from '../model/model-file.ts'
import { buildBlocksGraph, buildHeadGraph, kvNames, ropeShape, type Linear } from './llama-graph.ts'
import { causalMask, ropeTables } from './rope.ts'
import type { Runtime } from './runtime.ts'
import { readBlockWeights, readLinear } from './weights.ts'

/** A WebGPU device refuses buffers over its limits; say which tensor, before trying. */
function checkBufferLimit (runtime: Runtime, name: string, data: Linear | undefined): void {
  const bytes = data == null ? 0 : data instanceof Float32Array ? data.byteLength : data.packed.byteLength
  if (runtime.maxBufferBytes != null && bytes > runtime.maxBufferBytes) {
    throw new Error(`tensor ${name}: ${bytes} bytes exceeds this device's largest buffer (${runtime.maxBufferBytes} bytes)`)
  }
}

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

export class BlockRange {
  /** Tokens already in this range's KV cache. */
  position = 0
  private cache = new Map<string, OrtCommon.Tensor>()

  private constructor (
    readonly config: LlamaConfig,
    readonly first: number,
    readonly last: number,
    private readonly runtime: Runtime,
    private readonly session: OrtCommon.InferenceSession,
    private readonly freqFactors?: Float32Array
  ) {
    this.reset()
  }

  /** Loads blocks first..last (inclusive, 0-based): only their tensors are read. */
  static async load (model: ModelFile, first: number, last: number, runtime: Runtime): Promise<BlockRange> {
    const c = model.config
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last < first || last >= c.nLayers) {
      throw new Error(`layer range ${first}-${last} is outside the model's blocks 0-${c.nLayers - 1}`)
    }
    const blocks = []
    for (let i = first; i <= last; i++) {
      const weights = await readBlockWeights(model, i, runtime.packedMatMul)
      for (const [name, data] of Object.entries(weights)) checkBufferLimit(runtime, `blk.${i}.${name}`, data)
      blocks.push(weights)
    }
    const graph = buildBlocksGraph(c, first, blocks)
    blocks.length = 0
    const names = []
    for (let i = first; i <= last; i++) names.push(kvNames(i).presentK, kvNames(i).presentV)
    const session = await runtime.createSession(graph, names)
    const freqFactors = model.tensors.has(tensorNames.ropeFreqs) ? await readTensor(model, tensorNames.ropeFreqs) : undefined
    return new BlockRange(c, first, last, runtime, session, freqFactors)
  }

  reset (): void {
    for (const t of this.cache.values()) t.dispose()
    this.cache.clear()
    const { Tensor } = this.runtime.ort
    for (let i = this.first; i <= this.last; i++) {
      const kv = kvNames(i)
      this.cache.set(kv.pastK, new Tensor('float32', new Float32Array(0), [this.config.nKvHeads, 0, this.config.headDim]))
      this.cache.set(kv.pastV, new Tensor('float32', new Float32Array(0), [this.config.nKvHeads, 0, this.config.headDim]))
    }
    this.position = 0
  }

  /** Runs `tokens` new positions through the range, appending them to the KV cache. */
  async forward (hidden: Float32Array, tokens: number): Promise<Float32Array> {
    const c = this.config
    if (hidden.length !== tokens * c.dim) throw new Error(`blocks ${this.first}-${this.last}: hidden state has ${hidden.length} values, expected ${tokens} x ${c.dim}`)
    if (this.position + tokens > c.contextLength) throw new Error(`context full: ${this.position} + ${tokens} tokens exceeds the model's context of ${c.contextLength}`)
    const { Tensor } = this.runtime.ort
    const { cos, sin } = ropeTables(c, this.position, tokens, this.freqFactors)
    const group = c.nHeads / c.nKvHeads
    const ropeDims = ropeShape(c, tokens) as number[]
    const feeds: Record<string, OrtCommon.Tensor> = {
      hidden: new Tensor('float32', hidden, [tokens, c.dim]),
      rope_cos: new Tensor('float32', cos, ropeDims),
      rope_sin: new Tensor('float32', sin, ropeDims),
      mask: new Tensor('float32', causalMask(this.position, tokens, group), [group * tokens, this.position + tokens])
    }
    for (const [name, t] of this.cache) feeds[name] = t
    const out = await this.session.run(feeds)
    for (let i = this.first; i <= this.last; i++) {
      const kv = kvNames(i)
      this.cache.get(kv.pastK)?.dispose()
      this.cache.get(kv.pastV)?.dispose()
      this.cache.set(kv.pastK, out[kv.presentK])
      this.cache.set(kv.pastV, out[kv.presentV])
    }
    this.position += tokens
    const result = await out.hidden_out.getData() as Float32Array
    out.hidden_out.dispose()
    return result
  }

  async release (): Promise<void> {
    for (const t of this.cache.values()) t.dispose()
    await this.session.release()
  }
}

export class Head {
  private constructor (readonly config: LlamaConfig, private readonly runtime: Runtime, private readonly session: OrtCommon.InferenceSession) {}

  static async load (model: ModelFile, runtime: Runtime): Promise<Head> {
    const c = model.config
    const outputName = c.tiedEmbeddings ? tensorNames.embedding : tensorNames.output
    const output = await readLinear(model, outputName, runtime.packedMatMul)
    checkBufferLimit(runtime, outputName, output)
    const graph = buildHeadGraph(c, await readTensor(model, tensorNames.outputNorm), output)
    return new Head(c, runtime, await runtime.createSession(graph))
  }

  /** Logits [tokens, vocab] for the given hidden states (pass only the rows you need). */
  async logits (hidden: Float32Array, tokens: number): Promise<Float32Array> {
    const out = await this.session.run({ hidden: new this.runtime.ort.Tensor('float32', hidden, [tokens, this.config.dim]) })
    return await out.logits.getData() as Float32Array
  }

  async release (): Promise<void> { await this.session.release() }
}
