// The ledger's stream protocol. The opener writes one frame and reads one reply, then the
// stream closes: a `ledger.request` (plain sync JSON: blocks are signed one by one, so the
// request and its reply need no envelope) or a `credit.transfer` envelope signed by the payer
// and addressed to the payee. The reply is always a `ledger.blocks` message; for a transfer it
// holds the payee's receive block, its half of the two signatures.
import type { Connection, Stream } from '@libp2p/interface'
import { jsonFrames, closeStream, openStream } from '../../mesh/frames.ts'
import { PROTOCOL_MAJOR } from '../../protocol/version.ts'
import { MAX_STREAM_BYTES, type SyncMessage } from '../../ledger/sync.ts'
import type { Block } from '../../ledger/block.ts'
import type { Envelope } from '../../protocol/envelope.ts'

export const LEDGER_TOPIC = `clawnet/${PROTOCOL_MAJOR}/ledger`
export const LEDGER_PROTOCOL = `/clawnet/ledger/${PROTOCOL_MAJOR}.0.0`

const TIMEOUT_MS = 15_000

/** A reply; `reason` says why a transfer was not acknowledged (sync readers ignore the extra field). */
export interface BlocksReply { type: 'ledger.blocks', blocks: Block[], reason?: string }

export type Request = Extract<SyncMessage, { type: 'ledger.request' }>

/** One round trip on a fresh stream; the reply comes back as raw bytes for LedgerSync to check. */
export async function ask (conn: Connection, message: Request | Envelope): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  const stream = await openStream(conn, LEDGER_PROTOCOL, signal)
  const frames = jsonFrames(stream, MAX_STREAM_BYTES)
  try {
    await frames.write(message, signal)
    return await frames.readBytes(signal)
  } finally {
    await closeStream(stream, 'ledger stream closed')
  }
}

/** Answers one frame with whatever `answer` makes of it. */
export async function serve (stream: Stream, answer: (bytes: Uint8Array) => Promise<BlocksReply>): Promise<void> {
  const signal = AbortSignal.timeout(TIMEOUT_MS)
  const frames = jsonFrames(stream, MAX_STREAM_BYTES)
  try {
    await frames.write(await answer(await frames.readBytes(signal)), signal)
  } finally {
    await closeStream(stream, 'ledger stream closed')
  }
}

/** The `type` of a frame, read without trusting anything else in it. */
export function frameType (bytes: Uint8Array): string | undefined {
  try {
    const t = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))?.type
    return typeof t === 'string' ? t : undefined
  } catch {
    return undefined
  }
}
