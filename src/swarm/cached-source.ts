import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { ByteSource } from '../model/source-http.ts'

export interface ChunkStore {
  get: (key: string) => Promise<Uint8Array | undefined>
  put: (key: string, bytes: Uint8Array) => Promise<void>
}

/**
 * Remembers every piece read from a remote model (a URL or a peer), so a reload or a restart
 * loads its range from local storage instead of the network. Pieces are keyed by the source's
 * identity (URL and size) and the exact byte range; a cache failure falls back to the network.
 */
export function cachedSource (source: ByteSource, identity: string, store: ChunkStore): ByteSource & { hits: () => number } {
  const prefix = bytesToHex(sha256(new TextEncoder().encode(`${identity}\n${source.size}`))).slice(0, 32)
  let hits = 0
  return {
    name: source.name,
    size: source.size,
    hits: () => hits,
    async read (offset, length) {
      const key = `${prefix}-${offset}-${length}`
      const cached = await store.get(key).catch(() => undefined)
      if (cached != null && cached.byteLength === length) {
        hits++
        return cached
      }
      const bytes = await source.read(offset, length)
      await store.put(key, bytes).catch(() => {})
      return bytes
    },
    close: source.close
  }
}
