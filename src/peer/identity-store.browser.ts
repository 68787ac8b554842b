import { openDB } from 'idb'
import type { IdentityStore, StoredIdentity } from './identity.ts'

const DB = 'clawnet'
const STORE = 'identity'

/** Browser: one record in IndexedDB, so a reload (or a restart of the browser) is the same agent. */
export function identityStore (_dataDir?: string): IdentityStore {
  const db = openDB(DB, 1, {
    upgrade (d) {
      if (!d.objectStoreNames.contains(STORE)) d.createObjectStore(STORE)
    }
  })
  return {
    async load () {
      return await (await db).get(STORE, 'self') as StoredIdentity | undefined
    },
    async save (id: StoredIdentity) {
      await (await db).put(STORE, { key: new Uint8Array(id.key), profile: id.profile }, 'self')
    }
  }
}
