// A byte source over bytes already in memory (a fetched file, a test fixture).
import { checkRange, type ByteSource } from './source-http.ts'

export function memorySource (bytes: Uint8Array, name = 'memory'): ByteSource {
  return {
    name,
    size: bytes.length,
    async read (offset, length) {
      checkRange(name, bytes.length, offset, length)
      return bytes.slice(offset, offset + length)
    }
  }
}
