import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { fromString, toString } from 'uint8arrays'
import { canonicalJson } from './canonical.ts'
import { LIMITS } from './limits.ts'
import { checkBody, isKnownType, type BodyTypes, type MessageType } from './messages.ts'
import { PROTOCOL_VERSION, isCompatible, parseVersion } from './version.ts'

/** Every gossiped or streamed message. `sig` signs the canonical JSON of all other fields. */
export interface Envelope<B = unknown> {
  v: string
  type: string
  from: string
  to?: string
  ts: number
  id: string
  body: B
  sig: string
}

export type RejectReason =
  | 'oversized' | 'malformed' | 'wrong-version' | 'unknown-type' | 'invalid-body'
  | 'bad-signature' | 'stale' | 'replay' | 'rate-limited' | 'sender-mismatch' | 'wrong-recipient'

export class RejectError extends Error {
  constructor (readonly reason: RejectReason, detail: string) {
    super(`${reason}: ${detail}`)
  }
}

export type Decoded<B = unknown> = { ok: true, env: Envelope<B> } | { ok: false, reason: RejectReason, detail: string }

/** Domain separation: a ClawNet signature can never be replayed as some other protocol's. */
const SIG_PREFIX = 'clawnet-envelope\n'

function signingBytes (env: Omit<Envelope, 'sig'>): Uint8Array {
  return fromString(SIG_PREFIX + canonicalJson(env), 'utf8')
}

function randomId (): string {
  const b = new Uint8Array(12)
  crypto.getRandomValues(b)
  return toString(b, 'base64url')
}

export interface Signer { peerId: string, privateKey: PrivateKey }

export async function signEnvelope<T extends MessageType> (signer: Signer, type: T, body: BodyTypes[T], opts?: { to?: string, ts?: number }): Promise<Envelope<BodyTypes[T]>>
export async function signEnvelope (signer: Signer, type: string, body: unknown, opts?: { to?: string, ts?: number }): Promise<Envelope>
export async function signEnvelope (signer: Signer, type: string, body: unknown, opts: { to?: string, ts?: number } = {}): Promise<Envelope> {
  const unsigned = { v: PROTOCOL_VERSION, type, from: signer.peerId, to: opts.to, ts: opts.ts ?? Date.now(), id: randomId(), body }
  const sig = await signer.privateKey.sign(signingBytes(unsigned))
  return { ...unsigned, sig: toString(sig, 'base64url') }
}

export function encodeEnvelope (env: Envelope): Uint8Array {
  return fromString(JSON.stringify(env), 'utf8')
}

const fail = (reason: RejectReason, detail: string): Decoded<never> => ({ ok: false, reason, detail })

/**
 * Parses and checks an envelope in the order that costs least first: size, shape, version,
 * type, body, clock, signature. Replay and rate checks need state and live in `Inbox`.
 */
export async function decodeEnvelope (bytes: Uint8Array, now = Date.now(), maxBytes: number = LIMITS.maxEnvelopeBytes): Promise<Decoded> {
  if (bytes.byteLength > maxBytes) return fail('oversized', `${bytes.byteLength} bytes > ${maxBytes}`)
  let raw: any
  try {
    raw = JSON.parse(toString(bytes, 'utf8'))
  } catch {
    return fail('malformed', 'not JSON')
  }
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) return fail('malformed', 'not an object')
  const version = parseVersion(raw.v)
  if (version == null) return fail('malformed', 'v')
  if (!isCompatible(version)) return fail('wrong-version', `${String(raw.v)} is not compatible with ${PROTOCOL_VERSION}`)
  for (const [k, ok] of [
    ['type', typeof raw.type === 'string' && raw.type.length <= 64],
    ['from', typeof raw.from === 'string' && raw.from.length <= 128],
    ['to', raw.to === undefined || (typeof raw.to === 'string' && raw.to.length <= 128)],
    ['ts', Number.isSafeInteger(raw.ts)],
    ['id', typeof raw.id === 'string' && raw.id.length >= 8 && raw.id.length <= 64],
    ['sig', typeof raw.sig === 'string' && raw.sig.length <= 200]
  ] as const) {
    if (!ok) return fail('malformed', k)
  }
  if (!isKnownType(raw.type)) return fail('unknown-type', raw.type)
  const bad = checkBody(raw.type, raw.body)
  if (bad != null) return fail('invalid-body', `${raw.type}: ${bad}`)
  if (Math.abs(now - raw.ts) > LIMITS.maxClockSkewMs) return fail('stale', `ts ${raw.ts} is ${Math.round((now - raw.ts) / 1000)} s from now`)

  // Ignore unknown top-level fields of a compatible version, but never let them into what we keep.
  const env: Envelope = { v: raw.v, type: raw.type, from: raw.from, to: raw.to, ts: raw.ts, id: raw.id, body: raw.body, sig: raw.sig }
  if (!(await verifySignature(env))) return fail('bad-signature', `signature does not match ${env.from}`)
  return { ok: true, env }
}

async function verifySignature (env: Envelope): Promise<boolean> {
  try {
    const key = peerIdFromString(env.from).publicKey
    if (key == null) return false
    const { sig, ...unsigned } = env
    return await key.verify(signingBytes(unsigned), fromString(sig, 'base64url'))
  } catch {
    return false
  }
}
