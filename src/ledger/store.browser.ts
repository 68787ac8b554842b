// Browser ledger store: IndexedDB through idb, one readwrite transaction per record with
// strict durability, so a tab closed mid-write leaves the record either committed or absent.
import { openDB, type IDBPDatabase } from 'idb'
import type { LedgerStore, StoredRecord } from './store-types.ts'

export type { LedgerStore, StoredRecord } from './store-types.ts'
export { MemoryStore } from './store-types.ts'

const RECORDS = 'records'

export async function openStore(name: string): Promise<LedgerStore> {
  const db = await openDB(name, 1, {
    upgrade(db) {
      // Auto-increment keys keep records in append order, which replay depends on.
      db.createObjectStore(RECORDS, { autoIncrement: true })
    }
  })
  return new IdbStore(db)
}

class IdbStore implements LedgerStore {
  constructor(private readonly db: IDBPDatabase) {}

  async append(record: StoredRecord): Promise<void> {
    const tx = this.db.transaction(RECORDS, 'readwrite', { durability: 'strict' })
    await Promise.all([tx.store.add(record), tx.done])
  }

  load(): Promise<StoredRecord[]> {
    return this.db.getAll(RECORDS)
  }

  async close(): Promise<void> {
    this.db.close()
  }
}
