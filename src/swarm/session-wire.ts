import type { Stream } from '@libp2p/interface'
import { jsonFrames } from '../mesh/frames.ts'
import type { WireDType } from './tensor-codec.ts'
import type { WorkReceipt } from './payments.ts'

/** Largest tensor frame: a long prefill of a wide model (e.g. 2048 tokens × 8192 dims × f32). */
export const MAX_TENSOR_BYTES = 64 * 1024 * 1024

/** Client → server messages of an inference session (one session per stream). */
export type SessionRequest =
  | { type: 'open', model: string, start: number, end: number, maxLength: number, dtype: WireDType }
  /**
   * Followed by one binary frame: `tokens` hidden states starting at `position`, in `dtype` when
   * given (and the reply in the same), else in the session's.
   */
  | { type: 'step', position: number, tokens: number, dtype?: WireDType }
  /** To a host that named a payment session: the cumulative receipt for what it served so far. */
  | { type: 'receipt', receipt: WorkReceipt }
  | { type: 'close' }

/** Server → client replies; an ok step reply is followed by one binary frame. */
export type SessionReply =
  /**
   * `session` (open reply) is present when the host charges for its work; `settle` (step reply)
   * asks the client to pay what it signed for.
   */
  | { ok: true, tokens?: number, computeMs?: number, session?: string, settle?: boolean }
  | { ok: false, error: SessionError, detail: string }

export type SessionError = 'busy' | 'unknown-model' | 'wrong-range' | 'bad-request' | 'context-full' | 'position' | 'payment-required' | 'internal'

export function sessionFrames (stream: Stream) {
  return jsonFrames(stream, MAX_TENSOR_BYTES)
}

export class SessionFailure extends Error {
  /** The peer at fault, when known, so the client can route around it. */
  peer?: string
  constructor (readonly code: SessionError | 'timeout' | 'transport' | 'malformed', message: string, peer?: string) {
    super(message)
    this.peer = peer
  }
}
