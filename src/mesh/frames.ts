import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { fromString, toString } from 'uint8arrays'
import { LIMITS } from '../protocol/limits.ts'

/**
 * Length-prefixed frames (unsigned varint length, then the bytes) over a stream, capped in size:
 * JSON messages, and raw binary frames for tensors.
 */
export function jsonFrames (stream: Stream, maxBytes: number = LIMITS.maxEnvelopeBytes) {
  const lp = lpStream(stream, { maxDataLength: maxBytes })
  return {
    async write (value: unknown, signal?: AbortSignal): Promise<void> {
      await lp.write(fromString(JSON.stringify(value), 'utf8'), { signal })
    },
    async writeBytes (bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
      await lp.write(bytes, { signal })
    },
    /** A JSON header and its binary payload as two frames in one write (one network message). */
    async writeWithBytes (value: unknown, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
      await lp.writeV([fromString(JSON.stringify(value), 'utf8'), bytes], { signal })
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
