import type { Connection, Stream } from '@libp2p/interface'
import type { ByteSource } from '../model/source-http.ts'
import { WEIGHTS_PROTOCOL } from './messages.ts'
import { sessionFrames } from './session-wire.ts'

/** Largest piece one weights request may ask for; bigger reads are split. */
export const MAX_WEIGHTS_CHUNK = 16 * 1024 * 1024

type WeightsRequest = { model: string, offset: number, length: number } | { type: 'close' }
type WeightsReply = { ok: true, name: string, size: number } | { ok: false, error: string }

/**
 * Serves the bytes of a model this agent holds, so a model spreads through the mesh without
 * everyone hitting its original URL. One stream carries any number of range requests.
 */
export async function serveWeights (stream: Stream, holds: (model: string) => ByteSource | undefined): Promise<void> {
  const frames = sessionFrames(stream)
  try {
    for (;;) {
      const req = await frames.readJson(AbortSignal.timeout(30_000)) as WeightsRequest
      if ('type' in req && req.type === 'close') return
      const r = req as Extract<WeightsRequest, { model: string }>
      const source = typeof r.model === 'string' ? holds(r.model) : undefined
      if (source == null) {
        await frames.write({ ok: false, error: `this agent does not hold model ${String(r.model).slice(0, 12)}` } satisfies WeightsReply)
        return
      }
      if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < 0 || r.length < 0 || r.length > MAX_WEIGHTS_CHUNK || r.offset + r.length > source.size) {
        await frames.write({ ok: false, error: `bad range ${r.offset}+${r.length} of ${source.size} bytes (at most ${MAX_WEIGHTS_CHUNK} per request)` } satisfies WeightsReply)
        return
      }
      await frames.write({ ok: true, name: source.name, size: source.size } satisfies WeightsReply)
      await frames.writeBytes(r.length === 0 ? new Uint8Array(0) : await source.read(r.offset, r.length))
    }
  } finally {
    await stream.close().catch(() => { stream.abort(new Error('weights closed')) })
  }
}

/** A ByteSource reading a model's bytes from a peer that holds it. */
export async function openPeerSource (conn: Connection, model: string, timeoutMs = 60_000): Promise<ByteSource> {
  const stream = await conn.newStream(WEIGHTS_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(timeoutMs) })
  const frames = sessionFrames(stream)
  let queue: Promise<unknown> = Promise.resolve()
  const request = async (offset: number, length: number): Promise<{ info: Extract<WeightsReply, { ok: true }>, bytes: Uint8Array }> => {
    const signal = AbortSignal.timeout(timeoutMs)
    await frames.write({ model, offset, length } satisfies WeightsRequest, signal)
    const reply = await frames.readJson(signal) as WeightsReply
    if (!reply.ok) throw new Error(`peer ${conn.remotePeer.toString()} refused weights: ${reply.error}`)
    const bytes = await frames.readBytes(signal)
    if (bytes.byteLength !== length) throw new Error(`peer ${conn.remotePeer.toString()} sent ${bytes.byteLength} bytes for a ${length}-byte range`)
    return { info: reply, bytes }
  }
  // One request at a time on the stream: replies carry no ids.
  const serial = async <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn)
    queue = next.catch(() => {})
    return await next
  }
  const { info } = await serial(async () => await request(0, 0))
  return {
    name: info.name,
    size: info.size,
    async read (offset: number, length: number) {
      const out = new Uint8Array(length)
      for (let done = 0; done < length; done += MAX_WEIGHTS_CHUNK) {
        const n = Math.min(MAX_WEIGHTS_CHUNK, length - done)
        out.set((await serial(async () => await request(offset + done, n))).bytes, done)
      }
      return out
    },
    async close () {
      await frames.write({ type: 'close' }).catch(() => {})
      await stream.close().catch(() => {})
    }
  }
}
