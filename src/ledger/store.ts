// Node ledger store: one append-only file of framed records in a directory. A frame is
// [u32 length][u32 crc32][JSON payload]; each append is fsynced before it resolves, and a frame
// torn by a crash (short or failing its checksum) is cut off on open, so a record is either
// wholly there or absent. Browsers get store.browser.ts via package.json "browser".
import { open, rename, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { makeDir } from '../make-dir.ts'
import type { LedgerStore, StoredRecord } from './store-types.ts'

export type { LedgerStore, StoredRecord } from './store-types.ts'
export { MemoryStore } from './store-types.ts'

const HEADER = 8
/** Every payload is a StoredRecord serialized by append(), so a real frame's JSON starts so. */
const RECORD_START = new TextEncoder().encode('{"kind":"')

const FILE = 'ledger.log'

export async function openStore(dir: string): Promise<LedgerStore> {
  await makeDir(dir)
  const path = join(dir, FILE)
  const fh = await open(path, 'a+')
  try {
    const buf = await readAll(fh)
    const { records, damaged } = readFrames(buf)
    const validBytes = damaged[0]?.at ?? buf.length
    if (damaged.length > 0) {
      // Appends are sequential and each waits for the last, so a crash tears only the final frame.
      // Intact frames after the bad bytes mean damage, not a torn append: cutting there would
      // throw away acknowledged blocks, and a lost own block gets signed again as a fork.
      const next = validBytes + damaged[0].bytes
      if (next < buf.length) {
        throw new Error(`ledger store ${path} is damaged at byte ${validBytes} (intact records follow at byte ${next}); it was left untouched so that no block is lost: restore it from a backup, or run 'clawnet repair-ledger --data ${dir}', before starting this agent`)
      }
      await fh.truncate(validBytes)
      await fh.datasync()
    }
    return new FileStore(fh, path, records, validBytes)
  } catch (err) {
    await fh.close()
    throw err
  }
}

async function readAll(fh: FileHandle): Promise<Uint8Array> {
  const { size } = await fh.stat()
  const buf = new Uint8Array(size)
  if (size > 0) await fh.read(buf, 0, size, 0)
  return buf
}

const dec = new TextDecoder('utf-8', { fatal: true })

/** The record of the frame at `at`, or undefined when no whole, intact frame starts there. */
function frameAt(buf: Uint8Array, at: number): { record: StoredRecord; end: number } | undefined {
  if (at + HEADER > buf.length) return undefined
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const len = view.getUint32(at)
  const end = at + HEADER + len
  if (end > buf.length) return undefined
  const payload = buf.subarray(at + HEADER, end)
  if (crc32(payload) !== view.getUint32(at + 4)) return undefined
  try {
    return { record: JSON.parse(dec.decode(payload)), end }
  } catch {
    return undefined
  }
}

/** Offset of the first intact frame at or after `from`, if any. */
function findFrame(buf: Uint8Array, from: number): number | undefined {
  outer: for (let at = from; at + HEADER + RECORD_START.length <= buf.length; at++) {
    for (let i = 0; i < RECORD_START.length; i++) if (buf[at + HEADER + i] !== RECORD_START[i]) continue outer
    if (frameAt(buf, at) !== undefined) return at
  }
  return undefined
}

/** A span of bytes in a store file that holds no intact frame. */
export interface DamagedSpan { at: number; bytes: number }

/**
 * Every intact record of a store file's bytes, stepping over damaged spans (the store's frames
 * carry a checksum, and a record's JSON always starts the same way, so intact frames are found
 * again after any damage), with where the damage lies.
 */
function readFrames(buf: Uint8Array): { records: StoredRecord[]; damaged: DamagedSpan[] } {
  const records: StoredRecord[] = []
  const damaged: DamagedSpan[] = []
  for (let at = 0; at < buf.length;) {
    const f = frameAt(buf, at)
    if (f !== undefined) {
      records.push(f.record)
      at = f.end
      continue
    }
    const next = findFrame(buf, at + 1) ?? buf.length
    damaged.push({ at, bytes: next - at })
    at = next
  }
  return { records, damaged }
}

/** What `clawnet repair-ledger` starts from: the intact records of a damaged store, and the damage. */
export async function salvageStore(dir: string): Promise<{ records: StoredRecord[]; damaged: DamagedSpan[] }> {
  const fh = await open(join(dir, FILE), 'r')
  try {
    return readFrames(await readAll(fh))
  } finally {
    await fh.close()
  }
}

/**
 * Replaces the store file with one holding `records`, durably: the new file is written and
 * synced beside the old one, the old one is renamed to `aside` (kept, never deleted), and the
 * new one takes its name.
 */
export async function replaceStore(dir: string, records: StoredRecord[], aside: string): Promise<void> {
  const path = join(dir, FILE)
  const fresh = `${path}.new`
  const fh = await open(fresh, 'w')
  try {
    await fh.writeFile(Buffer.concat(records.map(encodeFrame)))
    await fh.datasync()
  } finally {
    await fh.close()
  }
  await rename(path, join(dir, aside))
  await rename(fresh, path)
  const d = await open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

function encodeFrame(record: StoredRecord): Uint8Array {
  const payload = new TextEncoder().encode(JSON.stringify(record))
  const frame = new Uint8Array(HEADER + payload.length)
  const view = new DataView(frame.buffer)
  view.setUint32(0, payload.length)
  view.setUint32(4, crc32(payload))
  frame.set(payload, HEADER)
  return frame
}

class FileStore implements LedgerStore {
  private tail: Promise<unknown> = Promise.resolve()
  /** Set when a failed append could not be undone: nothing may be acknowledged behind a torn frame. */
  private broken: Error | undefined

  /** `end`: the file's length as far as this store wrote it. */
  constructor(private readonly fh: FileHandle, private readonly path: string, private readonly loaded: StoredRecord[], private end: number) {}

  append(record: StoredRecord): Promise<void> {
    const frame = encodeFrame(record)
    // One frame at a time: interleaved writes would tear each other.
    const run = this.tail.then(() => this.write(frame))
    this.tail = run.catch(() => undefined)
    return run
  }

  private async write(frame: Uint8Array): Promise<void> {
    if (this.broken != null) throw this.broken
    // A second process on the same file would replay this agent's chain from an older head and
    // sign different blocks for seqs already taken: a double spend the agent never meant.
    const { size } = await this.fh.stat()
    if (size !== this.end) {
      throw new Error(`${this.path} changed from ${this.end} to ${size} bytes behind this ledger's back: another process is using the same ledger directory. Stop the other one and restart this agent`)
    }
    try {
      // FileHandle.write may write less than asked (a nearly full disk) and still resolve.
      for (let off = 0; off < frame.length;) {
        const { bytesWritten } = await this.fh.write(frame, off)
        if (bytesWritten <= 0) throw new Error('no progress writing the ledger')
        off += bytesWritten
      }
      await this.fh.datasync()
    } catch (err) {
      // A partial frame left in place would make the next open stop there, dropping every
      // record acknowledged after it; and a whole frame whose fsync failed is a block the
      // ledger believes unsaved and may sign differently, so it must not come back on replay.
      try {
        await this.fh.truncate(this.end)
      } catch (undo) {
        this.broken = new Error(`${this.path} could not be repaired after a failed write (${(undo as Error).message}); restart this agent`)
      }
      throw err
    }
    this.end += frame.length
  }

  async load(): Promise<StoredRecord[]> {
    return this.loaded
  }

  async close(): Promise<void> {
    await this.tail
    await this.fh.close()
  }
}
