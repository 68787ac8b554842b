// Byte source over a Blob/File (a local file picked in the browser; Node 20 has Blob too).
import { checkRange, type ByteSource } from './source-http.ts'

export function openBlobSource (blob: Blob, onProgress?: (loaded: number) => void): ByteSource {
  const name = (blob as File).name ?? 'blob'
  let loaded = 0
  return {
    name,
    size: blob.size,
    async read (offset, length) {
      checkRange(name, blob.size, offset, length)
      const bytes = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer())
      loaded += length
      onProgress?.(loaded)
      return bytes
    }
  }
}
