// Browser byte sources: URLs through HTTP Range, local files (File/Blob) through slice().
import { openHttpSource, type ByteSource } from './source-http.ts'

export type { ByteSource } from './source-http.ts'

export async function openSource (location: string | Blob, onProgress?: (loaded: number) => void): Promise<ByteSource> {
  if (typeof location === 'string') return await openHttpSource(location, onProgress)
  return openBlobSource(location, onProgress)
}

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

/** Browsers cannot list a server directory: the tokenizer must be named or conventionally placed. */
export async function listSiblings (_location: string): Promise<string[]> {
  return []
}
