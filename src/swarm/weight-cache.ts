// Node: cached weight pieces live as files under the agent's data directory.
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeDir } from '../make-dir.ts'
import type { ChunkStore } from './cached-source.ts'

export function chunkStore (dir = '.data/weights'): ChunkStore {
  const path = (key: string): string => join(dir, key.replace(/[^a-zA-Z0-9._-]/g, '_'))
  return {
    async get (key) {
      try {
        return new Uint8Array(await readFile(path(key)))
      } catch {
        return undefined
      }
    },
    async put (key, bytes) {
      await makeDir(dir)
      const file = path(key)
      await writeFile(`${file}.tmp`, bytes)
      await rename(`${file}.tmp`, file)
    }
  }
}
