import { lpStream } from '@libp2p/utils'
import type { Connection, Stream } from '@libp2p/interface'
import { fromString, toString } from 'uint8arrays'
import * as varint from 'uint8-varint'
import { LIMITS } from '../protocol/limits.ts'

/**
 * Length-prefixed frames (unsigned varint length, then the bytes) over a stream, capped in size:
 * JSON messages, and raw binary frames for tensors.
 */
export function jsonFrames (stream: Stream, maxBytes: number = LIMITS.maxEnvelopeBytes) {
  const lp = lpStream(stream, { maxDataLength: maxBytes })
  const send = async (parts: Uint8Array[], signal?: AbortSignal): Promise<void> => {
    if (!stream.send(contiguous(parts))) await stream.onDrain({ signal })
  }
  return {
    async write (value: unknown, signal?: AbortSignal): Promise<void> {
      await send([fromString(JSON.stringify(value), 'utf8')], signal)
    },
    async writeBytes (bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
      await send([bytes], signal)
    },
    /** A JSON header and its binary payload as two frames in one write (one network message). */
    async writeWithBytes (value: unknown, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
      await send([fromString(JSON.stringify(value), 'utf8'), bytes], signal)
    },
    /** Raw bytes of the next frame: envelopes are decoded (and counted) by the Inbox. */
    async readBytes (signal?: AbortSignal): Promise<Uint8Array> {
      return (await lp.read({ signal })).subarray()
    },
    async readJson (signal?: AbortSignal): Promise<any> {
      return JSON.parse(toString(await this.readBytes(signal), 'utf8'))
    }
  }
}

/**
 * Opens a stream for `protocol` on `conn`, relayed connections included (where two agents first
 * meet). Protocol negotiation rejects with the stream's close event, not an Error, when the link
 * closes under it; that becomes an Error that says what happened.
 */
export async function openStream (conn: Connection, protocol: string, signal: AbortSignal): Promise<Stream> {
  try {
    return await conn.newStream(protocol, { runOnLimitedConnection: true, signal })
  } catch (err: any) {
    if (err instanceof Error) throw err
    const cause = err?.error instanceof Error ? `: ${err.error.message}` : ''
    throw new Error(`the link to ${conn.remotePeer.toString()} closed while opening ${protocol}${cause}`)
  }
}

/** Closes a stream, or aborts it (naming `why`) when it cannot be closed gracefully. */
export async function closeStream (stream: Stream, why: string): Promise<void> {
  await stream.close().catch(() => { stream.abort(new Error(why)) })
}

/**
 * Length-prefixed frames in one buffer: the encrypted transports write each piece of a message
 * to the socket separately, and every write can wake the receiver for a fragment (a header and
 * a tensor as four pieces cost seven writes over TCP + Noise + Yamux, as one buffer four).
 */
function contiguous (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + varint.encodingLength(p.byteLength) + p.byteLength, 0))
  let at = 0
  for (const part of parts) {
    varint.encode(part.byteLength, out, at)
    at += varint.encodingLength(part.byteLength)
    out.set(part, at)
    at += part.byteLength
  }
  return out
}
