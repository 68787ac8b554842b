// GGUF v3 writer: typed metadata and tensors already encoded in their ggml type. Each metadata
// value carries its GGUF type because llama.cpp checks them (e.g. token ids must be UINT32).
import { GgufValueType as T } from './gguf.ts'
import { byteSize, checkRowLength, typeName } from './ggml-types.ts'

export interface MetaValue { type: T, value: unknown, itemType?: T }

export interface TensorToWrite {
  name: string
  /** ggml order: dims[0] is the row length. */
  dims: number[]
  type: number
  data: Uint8Array
}

export const meta = {
  u32: (value: number): MetaValue => ({ type: T.UINT32, value }),
  i32: (value: number): MetaValue => ({ type: T.INT32, value }),
  f32: (value: number): MetaValue => ({ type: T.FLOAT32, value }),
  bool: (value: boolean): MetaValue => ({ type: T.BOOL, value }),
  str: (value: string): MetaValue => ({ type: T.STRING, value }),
  strings: (value: string[]): MetaValue => ({ type: T.ARRAY, itemType: T.STRING, value }),
  f32s: (value: ArrayLike<number>): MetaValue => ({ type: T.ARRAY, itemType: T.FLOAT32, value }),
  i32s: (value: ArrayLike<number>): MetaValue => ({ type: T.ARRAY, itemType: T.INT32, value })
}

const ALIGNMENT = 32

class ByteWriter {
  private chunks: Uint8Array[] = []
  length = 0
  private readonly utf8 = new TextEncoder()

  bytes (b: Uint8Array): void { this.chunks.push(b); this.length += b.length }
  private fixed (size: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(size)
    set(new DataView(b.buffer))
    this.bytes(b)
  }

  u8 (v: number): void { this.fixed(1, d => d.setUint8(0, v)) }
  u32 (v: number): void { this.fixed(4, d => d.setUint32(0, v, true)) }
  i32 (v: number): void { this.fixed(4, d => d.setInt32(0, v, true)) }
  f32 (v: number): void { this.fixed(4, d => d.setFloat32(0, v, true)) }
  u64 (v: number): void { this.fixed(8, d => d.setBigUint64(0, BigInt(v), true)) }
  string (s: string): void { const b = this.utf8.encode(s); this.u64(b.length); this.bytes(b) }
  pad (): void { const n = (ALIGNMENT - (this.length % ALIGNMENT)) % ALIGNMENT; if (n > 0) this.bytes(new Uint8Array(n)) }

  value (type: T, v: unknown, itemType?: T): void {
    switch (type) {
      case T.UINT8: this.u8(v as number); break
      case T.UINT32: this.u32(v as number); break
      case T.INT32: this.i32(v as number); break
      case T.FLOAT32: this.f32(v as number); break
      case T.BOOL: this.u8(v === true ? 1 : 0); break
      case T.STRING: this.string(v as string); break
      case T.ARRAY: {
        if (itemType == null) throw new Error('GGUF array metadata needs an item type')
        const items = v as ArrayLike<unknown>
        this.u32(itemType)
        this.u64(items.length)
        for (let i = 0; i < items.length; i++) this.value(itemType, items[i])
        break
      }
      default: throw new Error(`GGUF writer: metadata type ${type} is not supported`)
    }
  }

  concat (): Uint8Array {
    const out = new Uint8Array(this.length)
    let at = 0
    for (const c of this.chunks) { out.set(c, at); at += c.length }
    this.chunks = [out]
    return out
  }
}

export function writeGguf (metadata: Record<string, MetaValue>, tensors: TensorToWrite[]): Uint8Array {
  const w = new ByteWriter()
  w.u32(0x46554747)
  w.u32(3)
  w.u64(tensors.length)
  w.u64(Object.keys(metadata).length)
  for (const [key, m] of Object.entries(metadata)) {
    w.string(key)
    w.u32(m.type)
    w.value(m.type, m.value, m.itemType)
  }
  let offset = 0
  for (const t of tensors) {
    const elements = t.dims.reduce((a, b) => a * b, 1)
    checkRowLength(t.type, t.dims[0], t.name)
    const want = byteSize(t.type, elements, t.name)
    if (t.data.length !== want) throw new Error(`tensor ${t.name}: ${typeName(t.type)} data has ${t.data.length} bytes, its shape needs ${want}`)
    w.string(t.name)
    w.u32(t.dims.length)
    for (const d of t.dims) w.u64(d)
    w.u32(t.type)
    w.u64(offset)
    offset += Math.ceil(want / ALIGNMENT) * ALIGNMENT
  }
  w.pad()
  for (const t of tensors) {
    w.bytes(t.data)
    w.pad()
  }
  return w.concat()
}
