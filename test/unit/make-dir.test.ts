import { afterEach, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeDir } from '../../src/make-dir.ts'

const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'clawnet-mkdir-'))
  dirs.push(d)
  return d
}

describe('makeDir', () => {
  it('creates every missing component with the mode asked for, and accepts a directory that exists', async () => {
    const root = await tempDir()
    const dir = join(root, 'a', 'b', 'c')
    await makeDir(dir, 0o700)
    for (const d of [join(root, 'a'), join(root, 'a', 'b'), dir]) {
      const s = await stat(d)
      expect(s.isDirectory()).toBe(true)
      expect(s.mode & 0o777).toBe(0o700)
    }
    await makeDir(dir)
    await makeDir(root)
  })

  it('refuses a path through or onto a file', async () => {
    const root = await tempDir()
    const file = join(root, 'file')
    await writeFile(file, 'x')
    await expect(makeDir(file)).rejects.toMatchObject({ code: 'ENOTDIR', message: expect.stringContaining(file) })
    await expect(makeDir(join(file, 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' })
  })

  // Node's recursive mkdir never settles here (it spins on procfs' ENOENT): `--data /proc/x` hung.
  it.runIf(existsSync('/proc/self'))('fails at once, naming the path, where procfs refuses a directory', async () => {
    await expect(makeDir('/proc/clawnet-test/sub')).rejects.toMatchObject({ code: 'ENOENT', message: expect.stringContaining('/proc/clawnet-test') })
  }, 5000)
})
