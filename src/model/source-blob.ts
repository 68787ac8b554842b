// Byte source over a Blob/File (a local file picked in the browser; Node 20 has Blob too).
import type { ByteSource } from './source-http.ts'

export function openBlobSource (blob: Blob, onProgress?: (loaded: number) => void): ByteSource {
  const name = (blob as File).name ?? 'blob'
  let loaded = 0
  return {
    name,
    size: blob.size,
    async read (offset, length) {
      if (offset < 0 || length < 0 || offset + length > blob.size) {
        throw new Error(`${name}: read of ${length} bytes at offset ${offset} is outside the file (${blob.size} bytes): truncated or corrupt`)
      }
      const bytes = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer())
      loaded += length
      onProgress?.(loaded)
      return bytes
    }
  }
}
