// Browsers: cached weight pieces live in Cache Storage, which survives reloads and restarts.
import type { ChunkStore } from './cached-source.ts'

const CACHE = 'clawnet-weights'

export function chunkStore (_dir?: string): ChunkStore {
  // Cache Storage keys are requests; a fixed fake origin keeps them apart from real URLs.
  const request = (key: string): string => `https://weights.clawnet.invalid/${encodeURIComponent(key)}`
  return {
    async get (key) {
      const hit = await (await caches.open(CACHE)).match(request(key))
      return hit == null ? undefined : new Uint8Array(await hit.arrayBuffer())
    },
    async put (key, bytes) {
      await (await caches.open(CACHE)).put(request(key), new Response(new Blob([bytes as BlobPart])))
    }
  }
}
