import type { Connection, Stream } from '@libp2p/interface'
import { toString } from 'uint8arrays'
import { jsonFrames, closeStream, openStream } from './frames.ts'
import { PROTOCOLS } from './topics.ts'
import { PROTOCOL_VERSION, isCompatible, parseVersion } from '../protocol/version.ts'
import type { Envelope } from '../protocol/envelope.ts'

/** The reply an agent sends instead of its announce when the other side speaks another major version. */
export interface HelloRefusal { error: 'incompatible-version', detail: string, v: string }

export type HelloResult = { ok: true, announce: Uint8Array } | { ok: false, refusal: HelloRefusal }

/** Checks the `v` of a hello frame before anything else, so the refusal can say exactly why. */
function refusalFor (frame: Uint8Array): HelloRefusal | undefined {
  let v: unknown
  try { v = JSON.parse(toString(frame, 'utf8'))?.v } catch { return undefined }
  const parsed = parseVersion(v)
  if (parsed != null && !isCompatible(parsed)) {
    return { error: 'incompatible-version', v: PROTOCOL_VERSION, detail: `peer speaks ${String(v)}, this agent speaks ${PROTOCOL_VERSION}; major versions must match` }
  }
  return undefined
}

/**
 * Dialer side of the handshake: send our announce, receive theirs (or their refusal).
 * Runs on relayed connections too, which is where two agents first meet.
 */
export async function sayHello (conn: Connection, ours: Envelope, signal: AbortSignal): Promise<HelloResult> {
  const stream = await openStream(conn, PROTOCOLS.hello, signal)
  const frames = jsonFrames(stream)
  try {
    await frames.write(ours, signal)
    const reply = await frames.readBytes(signal)
    const parsed = JSON.parse(toString(reply, 'utf8'))
    if (parsed?.error === 'incompatible-version') return { ok: false, refusal: parsed }
    const refusal = refusalFor(reply)
    if (refusal != null) return { ok: false, refusal }
    return { ok: true, announce: reply }
  } finally {
    await closeStream(stream, 'hello closed')
  }
}

/** Listener side: answer with our announce, or with a refusal that names both versions. */
export async function answerHello (stream: Stream, ours: () => Promise<Envelope>, onAnnounce: (bytes: Uint8Array) => Promise<void>, onRefused: (r: HelloRefusal) => void): Promise<void> {
  const signal = AbortSignal.timeout(10_000)
  const frames = jsonFrames(stream)
  try {
    const theirs = await frames.readBytes(signal)
    const refusal = refusalFor(theirs)
    if (refusal != null) {
      await frames.write(refusal, signal)
      onRefused(refusal)
      return
    }
    await frames.write(await ours(), signal)
    await onAnnounce(theirs)
  } finally {
    await closeStream(stream, 'hello closed')
  }
}

