import type { Connection, Stream } from '@libp2p/interface'
import { jsonFrames, closeStream, openStream } from './frames.ts'
import { PROTOCOLS } from './topics.ts'
import type { Envelope } from '../protocol/envelope.ts'

export interface DirectAck { ok: boolean, reason?: string }

/** The recipient got the message and said no: sending it again would not help. */
export class DirectRefused extends Error {
  constructor (readonly reason: string) { super(`recipient refused the message: ${reason}`) }
}

/** Sends one signed envelope to the agent at the other end of `conn` and waits for its ack. */
export async function sendDirectEnvelope (conn: Connection, env: Envelope, timeoutMs = 10_000): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs)
  const stream = await openStream(conn, PROTOCOLS.direct, signal)
  const frames = jsonFrames(stream)
  try {
    await frames.write(env, signal)
    const ack: DirectAck = await frames.readJson(signal)
    if (ack?.ok !== true) throw new DirectRefused(ack?.reason ?? 'no reason given')
  } finally {
    await closeStream(stream, 'direct closed')
  }
}

/** Receives one envelope; `accept` decides (and counts) and returns a reason when it refuses. */
export async function receiveDirect (stream: Stream, accept: (bytes: Uint8Array) => Promise<string | undefined>): Promise<void> {
  const signal = AbortSignal.timeout(10_000)
  const frames = jsonFrames(stream)
  try {
    const reason = await accept(await frames.readBytes(signal))
    const ack: DirectAck = reason == null ? { ok: true } : { ok: false, reason }
    await frames.write(ack, signal)
  } finally {
    await closeStream(stream, 'direct closed')
  }
}
