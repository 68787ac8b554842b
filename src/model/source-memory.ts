// A byte source over bytes already in memory (a fetched file, a test fixture).
import type { ByteSource } from './source-http.ts'

export function memorySource (bytes: Uint8Array, name = 'memory'): ByteSource {
  return {
    name,
    size: bytes.length,
    async read (offset, length) {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new Error(`${name}: read of ${length} bytes at offset ${offset} is outside the file (${bytes.length} bytes): truncated or corrupt`)
      }
      return bytes.slice(offset, offset + length)
    }
  }
}
