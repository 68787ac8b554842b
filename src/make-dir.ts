import { mkdir, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'

/**
 * Node: `mkdir -p` that always ends. Node's own recursive mkdir never returns, spinning a
 * thread-pool thread, on a path whose parent exists but answers ENOENT for any child, as procfs
 * does (`--data /proc/x`): it takes the ENOENT for a missing parent, finds the parent there, and
 * tries again. Here the missing components are created one by one below the deepest one that
 * exists, so every error is final and names the path.
 */
export async function makeDir (dir: string, mode?: number): Promise<void> {
  const missing: string[] = []
  for (let at = resolve(dir); !(await isDir(at)) && dirname(at) !== at; at = dirname(at)) missing.unshift(at)
  for (const path of missing) {
    // EEXIST: another process made it meanwhile.
    await mkdir(path, { mode }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err })
  }
}

/** False when nothing is there; a file in the way is an error, as it is for mkdir. */
async function isDir (path: string): Promise<boolean> {
  const s = await stat(path).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return undefined; throw err })
  if (s == null) return false
  if (!s.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR' })
  return true
}
