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
  return new IdbStore(db, name, await db.count(RECORDS))
}

class IdbStore implements LedgerStore {
  private tail: Promise<unknown> = Promise.resolve()

  /** `seen`: how many records this connection knows of; records are never deleted. */
  constructor(private readonly db: IDBPDatabase, private readonly name: string, private seen: number) {}

  append(record: StoredRecord): Promise<void> {
    // One at a time, so each transaction checks against the count the previous one left.
    const run = this.tail.then(() => this.write(record))
    this.tail = run.catch(() => undefined)
    return run
  }

  private async write(record: StoredRecord): Promise<void> {
    const tx = this.db.transaction(RECORDS, 'readwrite', { durability: 'strict' })
    // Checked inside the transaction that writes: another tab or worker holding the same
    // database (a lock stolen while the old tab was still writing, or no Web Locks at all)
    // replays the chain from an older head and would sign a second block for a taken seq.
    const count = await tx.store.count()
    if (count !== this.seen) {
      tx.abort()
      await tx.done.catch(() => undefined)
      throw new Error(`ledger database ${this.name} was written by another tab or window since this one read it; reload this page`)
    }
    await Promise.all([tx.store.add(record), tx.done])
    this.seen = count + 1
  }

  async load(): Promise<StoredRecord[]> {
    const tx = this.db.transaction(RECORDS, 'readonly')
    const records = await tx.store.getAll()
    await tx.done
    this.seen = records.length
    return records
  }

  async close(): Promise<void> {
    await this.tail
    this.db.close()
  }
}
