// A small builder for ONNX graphs: named values, initializers from typed arrays, nodes with
// attributes; `encode()` produces the ModelProto bytes an InferenceSession accepts.
import { AttrType, DataType, ModelProto } from './onnx-proto.ts'

type Dim = number | string
type Attr = number | number[] | { float: number } | { floats: number[] }

export class GraphBuilder {
  private readonly nodes: unknown[] = []
  private readonly initializers: unknown[] = []
  private readonly inputs: unknown[] = []
  private readonly outputs: unknown[] = []
  private readonly constants = new Map<string, string>()
  private counter = 0

  input (name: string, dims: Dim[], type: number = DataType.FLOAT): string {
    this.inputs.push(valueInfo(name, dims, type))
    return name
  }

  output (name: string, dims: Dim[], type: number = DataType.FLOAT): void {
    this.outputs.push(valueInfo(name, dims, type))
  }

  /** A float32 weight; stored as raw little-endian bytes without copying the array. */
  weight (name: string, data: Float32Array, dims: number[]): string {
    this.initializers.push({ name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) })
    return name
  }

  /** A float16 weight, given as its IEEE half bits. */
  half (name: string, bits: Uint16Array, dims: number[]): string {
    this.initializers.push({ name, dims, dataType: DataType.FLOAT16, rawData: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength) })
    return name
  }

  /** A uint8 initializer (packed quantized weights). */
  bytes (name: string, data: Uint8Array, dims: number[]): string {
    this.initializers.push({ name, dims, dataType: DataType.UINT8, rawData: data })
    return name
  }

  /** An int64 constant such as a Reshape target, shared between nodes that use the same values. */
  ints (values: number[]): string {
    const key = values.join(',')
    const existing = this.constants.get(key)
    if (existing != null) return existing
    const name = `const_i64_${this.constants.size}`
    this.initializers.push({ name, dims: [values.length], dataType: DataType.INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) })
    this.constants.set(key, name)
    return name
  }

  scalar (value: number): string {
    const key = `f${value}`
    const existing = this.constants.get(key)
    if (existing != null) return existing
    const name = `const_f32_${this.constants.size}`
    this.initializers.push({ name, dims: [], dataType: DataType.FLOAT, rawData: new Uint8Array(Float32Array.of(value).buffer) })
    this.constants.set(key, name)
    return name
  }

  /** Adds a node and returns its output names (one per `outputs` count, or the names given). */
  op (opType: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs: number | string[] = 1, domain = ''): string[] {
    const outNames = typeof outputs === 'number' ? Array.from({ length: outputs }, () => `${opType}_${this.counter++}`) : outputs
    const attribute = Object.entries(attrs).map(([name, v]) => attribute_(name, v))
    this.nodes.push({ opType, input: inputs, output: outNames, name: `${opType}_${this.counter++}`, attribute, domain })
    return outNames
  }

  op1 (opType: string, inputs: string[], attrs: Record<string, Attr> = {}, name?: string): string {
    return this.op(opType, inputs, attrs, name != null ? [name] : 1)[0]
  }

  encode (): Uint8Array {
    const model = {
      irVersion: 8,
      producerName: 'clawnet',
      opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
      graph: { name: 'clawnet', node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs }
    }
    return ModelProto.encode(ModelProto.fromObject(model)).finish()
  }
}

function valueInfo (name: string, dims: Dim[], elemType: number): unknown {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map(d => typeof d === 'number' ? { dimValue: d } : { dimParam: d }) } } } }
}

function attribute_ (name: string, v: Attr): unknown {
  if (typeof v === 'number') return { name, type: AttrType.INT, i: v }
  if (Array.isArray(v)) return { name, type: AttrType.INTS, ints: v }
  if ('float' in v) return { name, type: AttrType.FLOAT, f: v.float }
  return { name, type: AttrType.FLOATS, floats: v.floats }
}
