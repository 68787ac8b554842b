import type { TensorRef } from './model-file.ts'
// GGUF reader: parses the header (metadata + tensor directory) from the first bytes of a file and
// reads each tensor by offset afterwards, so a stage range fetches only its own tensors.
import type { ByteSource } from './source-http.ts'
import { byteSize, checkRowLength, dequantize, typeName } from './ggml-types.ts'

export enum GgufValueType { UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12 }

export type GgufValue = number | bigint | boolean | string | GgufValue[] | ArrayLike<number>

/** Where a tensor lies in the file: the format-neutral TensorRef every reader produces. */
export type GgufTensorInfo = TensorRef

export interface GgufFile {
  version: number
  metadata: Map<string, GgufValue>
  tensors: Map<string, GgufTensorInfo>
  dataOffset: number
  alignment: number
}

class NeedMore extends Error {}

const MAGIC = 0x46554747 // "GGUF" little-endian
const decoder = new TextDecoder('utf-8', { fatal: false })

class Cursor {
  pos = 0
  readonly view: DataView
  constructor (readonly bytes: Uint8Array, readonly complete: boolean, readonly what: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  need (n: number, field: string): void {
    if (this.pos + n <= this.bytes.length) return
    if (this.complete) throw new Error(`${this.what}: header truncated at offset ${this.pos} while reading ${field}: the file is incomplete (download or copy it again)`)
    throw new NeedMore()
  }

  u8 (f: string): number { this.need(1, f); return this.view.getUint8(this.pos++) }
  u32 (f: string): number { this.need(4, f); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v }
  u64 (f: string): number {
    this.need(8, f)
    const v = this.view.getBigUint64(this.pos, true)
    this.pos += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${this.what}: ${f} at offset ${this.pos - 8} is ${v}, too large: corrupt header`)
    return Number(v)
  }

  string (f: string): string {
    const len = this.u64(`${f} length`)
    if (len > 1 << 24) throw new Error(`${this.what}: ${f} at offset ${this.pos - 8} claims ${len} bytes: corrupt header`)
    this.need(len, f)
    const s = decoder.decode(this.bytes.subarray(this.pos, this.pos + len))
    this.pos += len
    return s
  }

  value (type: number, f: string): GgufValue {
    const v = this.view
    const scalar = (size: number, get: (at: number) => number | bigint | boolean): number | bigint | boolean => {
      this.need(size, f)
      const out = get(this.pos)
      this.pos += size
      return out
    }
    switch (type) {
      case GgufValueType.UINT8: return scalar(1, at => v.getUint8(at)) as number
      case GgufValueType.INT8: return scalar(1, at => v.getInt8(at)) as number
      case GgufValueType.UINT16: return scalar(2, at => v.getUint16(at, true)) as number
      case GgufValueType.INT16: return scalar(2, at => v.getInt16(at, true)) as number
      case GgufValueType.UINT32: return scalar(4, at => v.getUint32(at, true)) as number
      case GgufValueType.INT32: return scalar(4, at => v.getInt32(at, true)) as number
      case GgufValueType.FLOAT32: return scalar(4, at => v.getFloat32(at, true)) as number
      case GgufValueType.BOOL: return scalar(1, at => v.getUint8(at) !== 0) as boolean
      case GgufValueType.STRING: return this.string(f)
      case GgufValueType.UINT64: return scalar(8, at => v.getBigUint64(at, true)) as bigint
      case GgufValueType.INT64: return scalar(8, at => v.getBigInt64(at, true)) as bigint
      case GgufValueType.FLOAT64: return scalar(8, at => v.getFloat64(at, true)) as number
      case GgufValueType.ARRAY: return this.array(f)
      default: throw new Error(`${this.what}: ${f} at offset ${this.pos} has unknown value type ${type}: corrupt header`)
    }
  }

  array (f: string): GgufValue {
    const type = this.u32(`${f} element type`)
    const n = this.u64(`${f} length`)
    if (n > 1 << 26) throw new Error(`${this.what}: ${f} claims ${n} elements: corrupt header`)
    // Numeric arrays (token scores, types) are large in real vocabularies: typed arrays keep them compact.
    const typed: Record<number, [number, (view: DataView, at: number) => number]> = {
      [GgufValueType.FLOAT32]: [4, (d, at) => d.getFloat32(at, true)],
      [GgufValueType.INT32]: [4, (d, at) => d.getInt32(at, true)],
      [GgufValueType.UINT32]: [4, (d, at) => d.getUint32(at, true)],
      [GgufValueType.UINT8]: [1, (d, at) => d.getUint8(at)],
      [GgufValueType.INT8]: [1, (d, at) => d.getInt8(at)]
    }
    if (typed[type] != null) {
      const [size, get] = typed[type]
      this.need(size * n, f)
      const out = type === GgufValueType.FLOAT32 ? new Float32Array(n) : new Int32Array(n)
      for (let i = 0; i < n; i++) out[i] = get(this.view, this.pos + i * size)
      this.pos += size * n
      return out
    }
    const out: GgufValue[] = []
    for (let i = 0; i < n; i++) out.push(this.value(type, `${f}[${i}]`))
    return out
  }
}

function parseHeader (bytes: Uint8Array, complete: boolean, what: string, fileSize: number): GgufFile {
  const c = new Cursor(bytes, complete, what)
  const magic = c.u32('magic')
  if (magic !== MAGIC) throw new Error(`${what}: not a GGUF file (magic 0x${magic.toString(16)} at offset 0)`)
  const version = c.u32('version')
  if (version < 2 || version > 3) throw new Error(`${what}: unsupported GGUF version ${version}`)
  const tensorCount = c.u64('tensor count')
  const kvCount = c.u64('metadata count')
  const metadata = new Map<string, GgufValue>()
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key #${i}`)
    const type = c.u32(`type of ${key}`)
    metadata.set(key, c.value(type, key))
  }
  const alignment = Number(metadata.get('general.alignment') ?? 32)
  const infos: Array<Omit<GgufTensorInfo, 'offset'> & { rel: number }> = []
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string(`tensor #${i} name`)
    const nDims = c.u32(`tensor ${name} dimension count`)
    if (nDims < 1 || nDims > 4) throw new Error(`${what}: tensor ${name} has ${nDims} dimensions: corrupt header`)
    const dims: number[] = []
    for (let d = 0; d < nDims; d++) dims.push(c.u64(`tensor ${name} dim ${d}`))
    const type = c.u32(`tensor ${name} type`)
    const rel = c.u64(`tensor ${name} offset`)
    const elements = dims.reduce((a, b) => a * b, 1)
    checkRowLength(type, dims[0], name)
    infos.push({ name, dims, type, rel, elements, byteLength: byteSize(type, elements, name) })
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment
  const tensors = new Map<string, GgufTensorInfo>()
  for (const { rel, ...info } of infos) {
    const offset = dataOffset + rel
    if (offset + info.byteLength > fileSize) {
      throw new Error(`${what}: tensor ${info.name} (${typeName(info.type)}, ${info.byteLength} bytes at offset ${offset}) runs past the end of the file (${fileSize} bytes): truncated (download or copy it again)`)
    }
    tensors.set(info.name, { ...info, offset })
  }
  return { version, metadata, tensors, dataOffset, alignment }
}

/** Reads the header, fetching more bytes until it parses (big vocabularies make headers of many MiB). */
export async function readGgufHeader (source: ByteSource): Promise<GgufFile> {
  let length = Math.min(source.size, 1 << 20)
  for (;;) {
    const bytes = await source.read(0, length)
    try {
      return parseHeader(bytes, length === source.size, source.name, source.size)
    } catch (err) {
      if (!(err instanceof NeedMore)) throw err
      length = Math.min(source.size, length * 4)
    }
  }
}

export async function readGgufTensor (source: ByteSource, info: GgufTensorInfo): Promise<Float32Array> {
  return dequantize(info.type, await source.read(info.offset, info.byteLength), info.elements, info.name)
}

export function metaNumber (file: GgufFile, key: string, fallback?: number): number {
  const v = file.metadata.get(key)
  if (v == null) {
    if (fallback != null) return fallback
    throw new Error(`GGUF metadata ${key} is missing`)
  }
  return Number(v)
}
