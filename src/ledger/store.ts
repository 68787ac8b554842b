// Node ledger store: one append-only file of framed records in a directory. A frame is
// [u32 length][u32 crc32][JSON payload]; each append is fsynced before it resolves, and a frame
// torn by a crash (short or failing its checksum) is cut off on open, so a record is either
// wholly there or absent. Browsers get store.browser.ts via package.json "browser".
import { open, mkdir, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import type { LedgerStore, StoredRecord } from './store-types.ts'

export type { LedgerStore, StoredRecord } from './store-types.ts'
export { MemoryStore } from './store-types.ts'

const HEADER = 8

export async function openStore(dir: string): Promise<LedgerStore> {
  await mkdir(dir, { recursive: true })
  const fh = await open(join(dir, 'ledger.log'), 'a+')
  const { records, validBytes, size } = await scan(fh)
  if (validBytes < size) {
    await fh.truncate(validBytes)
    await fh.datasync()
  }
  return new FileStore(fh, records)
}

async function scan(fh: FileHandle): Promise<{ records: StoredRecord[]; validBytes: number; size: number }> {
  const { size } = await fh.stat()
  const buf = new Uint8Array(size)
  if (size > 0) await fh.read(buf, 0, size, 0)
  const view = new DataView(buf.buffer)
  const records: StoredRecord[] = []
  const dec = new TextDecoder('utf-8', { fatal: true })
  let at = 0
  while (at + HEADER <= size) {
    const len = view.getUint32(at)
    const sum = view.getUint32(at + 4)
    const payload = buf.subarray(at + HEADER, at + HEADER + len)
    if (at + HEADER + len > size || crc32(payload) !== sum) break
    try {
      records.push(JSON.parse(dec.decode(payload)))
    } catch {
      break
    }
    at += HEADER + len
  }
  return { records, validBytes: at, size }
}

class FileStore implements LedgerStore {
  private tail: Promise<unknown> = Promise.resolve()

  constructor(private readonly fh: FileHandle, private readonly loaded: StoredRecord[]) {}

  append(record: StoredRecord): Promise<void> {
    const payload = new TextEncoder().encode(JSON.stringify(record))
    const frame = new Uint8Array(HEADER + payload.length)
    const view = new DataView(frame.buffer)
    view.setUint32(0, payload.length)
    view.setUint32(4, crc32(payload))
    frame.set(payload, HEADER)
    // One frame at a time: interleaved writes would tear each other.
    const run = this.tail.then(async () => {
      await this.fh.write(frame)
      await this.fh.datasync()
    })
    this.tail = run.catch(() => undefined)
    return run
  }

  async load(): Promise<StoredRecord[]> {
    return this.loaded
  }

  async close(): Promise<void> {
    await this.tail
    await this.fh.close()
  }
}
