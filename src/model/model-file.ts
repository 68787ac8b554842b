// An opened model file: its config, tokenizer vocabulary and a directory of tensors that can be
// read one at a time by offset. GGUF and llama2.c checkpoints both open to this shape.
import type { ByteSource } from './source-http.ts'
import type { LlamaConfig } from './config.ts'
import type { Vocabulary } from './tokenizer.ts'
import { byteSize, dequantize, typeName } from './ggml-types.ts'

export interface TensorRef {
  name: string
  /** ggml order: dims[0] is the contiguous row length. */
  dims: number[]
  type: number
  offset: number
  byteLength: number
  elements: number
}

export interface ModelFile {
  format: 'gguf' | 'llama2c'
  source: ByteSource
  config: LlamaConfig
  tensors: Map<string, TensorRef>
  vocab?: Vocabulary
  chatTemplate?: string
}

export function tensorRef (model: ModelFile, name: string): TensorRef {
  const ref = model.tensors.get(name)
  if (ref == null) throw new Error(`${model.source.name}: tensor ${name} is missing`)
  return ref
}

export function expectDims (ref: TensorRef, dims: number[]): void {
  if (ref.dims.length !== dims.length || ref.dims.some((d, i) => d !== dims[i])) {
    throw new Error(`tensor ${ref.name}: shape [${ref.dims.join(', ')}] does not match the model config, expected [${dims.join(', ')}]`)
  }
}

export async function readTensor (model: ModelFile, name: string): Promise<Float32Array> {
  const ref = tensorRef(model, name)
  const bytes = await model.source.read(ref.offset, ref.byteLength)
  return dequantize(ref.type, bytes, ref.elements, ref.name)
}

/** Dequantizes single rows of a matrix tensor from its raw bytes (embedding lookups). */
export class RowReader {
  readonly rowBytes: number
  constructor (readonly ref: TensorRef, readonly bytes: Uint8Array) {
    this.rowBytes = byteSize(ref.type, ref.dims[0], ref.name)
  }

  get rows (): number { return this.ref.dims[1] }

  row (i: number): Float32Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.rows) throw new Error(`tensor ${this.ref.name}: row ${i} is outside 0..${this.rows - 1}`)
    return dequantize(this.ref.type, this.bytes.subarray(i * this.rowBytes, (i + 1) * this.rowBytes), this.ref.dims[0], `${this.ref.name} row ${i} (${typeName(this.ref.type)})`)
  }
}
