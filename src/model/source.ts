// Node byte sources: local files are read by offset, URLs through HTTP Range, so loading a
// stage range touches only the bytes of its own tensors.
import { open, readdir, stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { checkRange, openHttpSource, type ByteSource } from './source-http.ts'
import { openBlobSource } from './source-blob.ts'

export type { ByteSource } from './source-http.ts'

export async function openSource (location: string | Blob, onProgress?: (loaded: number) => void): Promise<ByteSource> {
  if (typeof location !== 'string') return openBlobSource(location, onProgress)
  if (/^https?:\/\//.test(location)) return await openHttpSource(location, onProgress)
  return await openFileSource(location)
}

export async function openFileSource (path: string): Promise<ByteSource> {
  // Node's own errors ("ENOENT: …, stat", "EISDIR: …, read") name the call, not the problem.
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new Error(err.code === 'ENOENT' ? `${path}: no such file` : err.code === 'EACCES' ? `${path}: permission denied` : `${path}: ${err.message}`)
  })
  if (info.isDirectory()) throw new Error(`${path} is a directory: give the model file itself (.gguf, or a llama2.c .bin)`)
  if (!info.isFile()) throw new Error(`${path} is not a regular file`)
  const size = info.size
  const handle = await open(path, 'r')
  return {
    name: basename(path),
    size,
    async read (offset, length) {
      checkRange(path, size, offset, length)
      const out = new Uint8Array(length)
      let done = 0
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done)
        if (bytesRead === 0) throw new Error(`${path}: file ended at byte ${offset + done}, wanted ${offset + length}`)
        done += bytesRead
      }
      return out
    },
    async close () { await handle.close() }
  }
}

/** Names of the files beside a local model (to find its tokenizer); URLs cannot be listed. */
export async function listSiblings (location: string): Promise<string[]> {
  if (/^https?:\/\//.test(location)) return []
  return await readdir(dirname(location)).catch(() => [])
}
