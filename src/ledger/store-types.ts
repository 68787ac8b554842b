// What the ledger persists: every block it accepted (any account) and every double-spend
// proof, in acceptance order, so replaying the records rebuilds the same state.
import type { Block } from './block.ts'
import type { DoubleSpendProof } from './doublespend.ts'

export type StoredRecord = { kind: 'block'; block: Block } | { kind: 'proof'; proof: DoubleSpendProof }

export interface LedgerStore {
  /** Resolves once the record is durable (fsync on disk, committed transaction in IndexedDB). */
  append(record: StoredRecord): Promise<void>
  /** All records in append order; a record torn by a crash is dropped, never half-returned. */
  load(): Promise<StoredRecord[]>
  close(): Promise<void>
}

/** Keeps nothing across restarts: for tests and for agents that opt out of persistence. */
export class MemoryStore implements LedgerStore {
  private records: StoredRecord[] = []
  async append(r: StoredRecord): Promise<void> { this.records.push(structuredClone(r)) }
  async load(): Promise<StoredRecord[]> { return structuredClone(this.records) }
  async close(): Promise<void> {}
}
