// Browser byte sources: URLs through HTTP Range, local files (File/Blob) through slice().
import { openHttpSource, type ByteSource } from './source-http.ts'
import { openBlobSource } from './source-blob.ts'

export type { ByteSource } from './source-http.ts'

export async function openSource (location: string | Blob, onProgress?: (loaded: number) => void): Promise<ByteSource> {
  if (typeof location === 'string') return await openHttpSource(location, onProgress)
  return openBlobSource(location, onProgress)
}

/** Browsers cannot list a server directory: the tokenizer must be named or conventionally placed. */
export async function listSiblings (_location: string): Promise<string[]> {
  return []
}
