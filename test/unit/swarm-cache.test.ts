import { describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cachedSource } from '../../src/swarm/cached-source.ts'
import { chunkStore } from '../../src/swarm/weight-cache.ts'
import type { ByteSource } from '../../src/model/source-http.ts'

function countingSource (bytes: Uint8Array): ByteSource & { reads: number } {
  const s = {
    name: 'model.gguf',
    size: bytes.length,
    reads: 0,
    async read (offset: number, length: number) {
      s.reads++
      return bytes.slice(offset, offset + length)
    }
  }
  return s
}

describe('weight cache', () => {
  it('serves a piece read once from disk afterwards, across instances (a restart)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clawnet-wcache-'))
    try {
      const data = Uint8Array.from({ length: 4096 }, (_, i) => i % 251)
      const origin = countingSource(data)
      const first = cachedSource(origin, 'https://host/model.gguf', chunkStore(dir))
      expect(await first.read(100, 1000)).toEqual(data.slice(100, 1100))
      expect(origin.reads).toBe(1)
      const afterRestart = cachedSource(origin, 'https://host/model.gguf', chunkStore(dir))
      expect(await afterRestart.read(100, 1000)).toEqual(data.slice(100, 1100))
      expect(origin.reads).toBe(1)
      expect(afterRestart.hits()).toBe(1)
      // Another file (or another size of the same URL) never gets these bytes.
      const other = cachedSource(countingSource(new Uint8Array(4096)), 'https://host/other.gguf', chunkStore(dir))
      expect((await other.read(100, 1000)).every(b => b === 0)).toBe(true)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('falls back to the source when a cached piece is damaged', async () => {
    const data = Uint8Array.from({ length: 64 }, (_, i) => i)
    const origin = countingSource(data)
    const store = { get: async () => new Uint8Array(3), put: async () => {} }
    expect(await cachedSource(origin, 'u', store).read(0, 10)).toEqual(data.slice(0, 10))
    expect(origin.reads).toBe(1)
  })
})
