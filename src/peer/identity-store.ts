import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeDir } from '../make-dir.ts'
import type { IdentityStore, StoredIdentity } from './identity.ts'

/** Node: identity.json in the agent's data directory, written atomically, readable only by its owner. */
export function identityStore (dataDir: string): IdentityStore {
  const file = join(dataDir, 'identity.json')
  return {
    async load () {
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (err: any) {
        if (err.code === 'ENOENT') return undefined
        throw err
      }
      const raw = JSON.parse(text)
      return { key: Buffer.from(raw.key, 'base64'), profile: raw.profile }
    },
    async save (id: StoredIdentity) {
      await makeDir(dataDir, 0o700)
      const tmp = `${file}.${process.pid}.tmp`
      await writeFile(tmp, JSON.stringify({ key: Buffer.from(id.key).toString('base64'), profile: id.profile }, null, 2), { mode: 0o600 })
      await rename(tmp, file)
    }
  }
}
