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
  | { type: 'step', position: number, tokens: number, dtype?: WireDType, forward?: boolean }
  /**
   * Push this session's forwarded outputs straight to the next hop's session (`push` is the id
   * that host gave the client), as Petals' rpc_push does; without `peer`, stop pushing.
   */
  | { type: 'next', peer?: string, push?: string }
  /** To a host that named a payment session: the cumulative receipt for what it served so far. */
  | { type: 'receipt', receipt: WorkReceipt }
  | { type: 'close' }

/** Server → client replies; an ok step reply is followed by one binary frame. */
export type SessionReply =
  /**
   * Open reply: `session` when the host charges for its work, `push` when it takes inputs pushed
   * by the previous hop. Step reply: `settle` asks the client to pay what it signed for;
   * `pushed` says whether a forwarded output went on to the next hop.
   */
  | { ok: true, tokens?: number, computeMs?: number, session?: string, push?: string, settle?: boolean, pushed?: boolean }
  | { ok: false, error: SessionError, detail: string }

export type SessionError = 'busy' | 'unknown-model' | 'wrong-range' | 'bad-request' | 'context-full' | 'position' | 'payment-required' | 'unreachable' | 'internal'

/** Host → host, on a push stream: first `{ push }` naming the receiving session, then steps. */
export interface PushStep { position: number, tokens: number, dtype: WireDType }

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
