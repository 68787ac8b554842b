import type { Connection, Stream } from '@libp2p/interface'
import type { ByteSource } from '../model/source-http.ts'
import type { ModelManifest } from '../model/manifest.ts'
import { WEIGHTS_PROTOCOL } from './messages.ts'
import { sessionFrames } from './session-wire.ts'
import { closeStream, openStream } from '../mesh/frames.ts'

/** Largest piece one weights request may ask for; bigger reads are split. */
export const MAX_WEIGHTS_CHUNK = 16 * 1024 * 1024

type WeightsRequest = { model: string, offset: number, length: number } | { type: 'manifest', model: string } | { type: 'close' }
type WeightsReply = { ok: true, name: string, size: number } | { ok: true, manifest: ModelManifest } | { ok: false, error: string }

/** What an agent holds of a model: its bytes, and the manifest that names them when it has it. */
export interface HeldModel { source: ByteSource, manifest?: ModelManifest }

/**
 * Serves the bytes of a model this agent holds, so a model spreads through the mesh without
 * everyone hitting its original URL. One stream carries any number of range requests.
 */
export async function serveWeights (stream: Stream, holds: (model: string) => HeldModel | undefined): Promise<void> {
  const frames = sessionFrames(stream)
  try {
    for (;;) {
      const req = await frames.readJson(AbortSignal.timeout(30_000)) as WeightsRequest
      if (req == null || typeof req !== 'object') {
        await frames.write({ ok: false, error: 'expected a JSON object: {"model","offset","length"}, {"model","type":"manifest"} or {"type":"close"}' } satisfies WeightsReply)
        return
      }
      if ('type' in req && req.type === 'close') return
      const held = typeof req?.model === 'string' ? holds(req.model) : undefined
      if (held == null) {
        await frames.write({ ok: false, error: `this agent does not hold model ${String((req as { model?: unknown })?.model).slice(0, 12)}` } satisfies WeightsReply)
        return
      }
      if ('type' in req && req.type === 'manifest') {
        await frames.write(held.manifest != null ? { ok: true, manifest: held.manifest } : { ok: false, error: 'this agent does not have the model\'s manifest' } satisfies WeightsReply)
        continue
      }
      const r = req as Extract<WeightsRequest, { offset: number }>
      const source = held.source
      if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < 0 || r.length < 0 || r.length > MAX_WEIGHTS_CHUNK || r.offset + r.length > source.size) {
        await frames.write({ ok: false, error: `bad range ${r.offset}+${r.length} of ${source.size} bytes (at most ${MAX_WEIGHTS_CHUNK} per request)` } satisfies WeightsReply)
        return
      }
      await frames.write({ ok: true, name: source.name, size: source.size } satisfies WeightsReply)
      await frames.writeBytes(r.length === 0 ? new Uint8Array(0) : await source.read(r.offset, r.length))
    }
  } finally {
    await closeStream(stream, 'weights closed')
  }
}

/** A model's bytes read from a peer that holds it, and the manifest the peer offers for them (unchecked). */
export type PeerSource = ByteSource & { manifest: () => Promise<unknown> }

export async function openPeerSource (conn: Connection, model: string, timeoutMs = 60_000): Promise<PeerSource> {
  const stream = await openStream(conn, WEIGHTS_PROTOCOL, AbortSignal.timeout(timeoutMs))
  const frames = sessionFrames(stream)
  let queue: Promise<unknown> = Promise.resolve()
  const request = async (offset: number, length: number): Promise<{ info: Extract<WeightsReply, { name: string }>, bytes: Uint8Array }> => {
    const signal = AbortSignal.timeout(timeoutMs)
    await frames.write({ model, offset, length } satisfies WeightsRequest, signal)
    const reply = await frames.readJson(signal) as WeightsReply
    if (!reply.ok) throw new Error(`peer ${conn.remotePeer.toString()} refused weights: ${reply.error}`)
    if (!('name' in reply)) throw new Error(`peer ${conn.remotePeer.toString()} answered a range request with something else`)
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
    async manifest () {
      return await serial(async () => {
        const signal = AbortSignal.timeout(timeoutMs)
        await frames.write({ type: 'manifest', model } satisfies WeightsRequest, signal)
        const reply = await frames.readJson(signal) as WeightsReply
        return reply.ok && 'manifest' in reply ? reply.manifest : undefined
      })
    },
    async close () {
      await frames.write({ type: 'close' }).catch(() => {})
      await stream.close().catch(() => {})
    }
  }
}
