// One block of an agent's credit chain: its fields, the canonical bytes that are hashed and
// signed, and the checks that need nothing but the block itself. Rules that need the chain
// live in chain.ts. The byte layout is specified in docs/protocol-ledger.md.
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'

/** Amounts are integer micro-credits so the draft's 0.01-credit fees stay exact. */
export const CREDIT = 1_000_000
export const ZERO_HASH = '0'.repeat(64)
export const BLOCK_VERSION = 1
export const MAX_MEMO_BYTES = 256
const MAX_ID_CHARS = 128
const SIGN_DOMAIN = new TextEncoder().encode('clawnet-ledger-block-v1\n')

export const BLOCK_TYPES = ['genesis', 'send', 'receive', 'grant', 'reserve', 'release', 'fee'] as const
export type BlockType = (typeof BLOCK_TYPES)[number]

export interface UnsignedBlock {
  v: number
  /** PeerId string of the chain's owner; the only key that may sign this block. */
  account: string
  seq: number
  /** Hash of block seq-1 (hex), ZERO_HASH for genesis. */
  prev: string
  type: BlockType
  amount: number
  /** Burned by this block (see policy.ts). */
  fee: number
  /** PeerId string of the other party, '' when there is none. */
  counterparty: string
  /** Hash (hex) of a linked block, ZERO_HASH when none: the send a receive acknowledges, the reserve a release or settling send closes, the evidence a grant claims. */
  ref: string
  /** Milliseconds since the Unix epoch, as claimed by the signer. */
  ts: number
  /** Free text, UTF-8, at most MAX_MEMO_BYTES: reason of a transfer, owner id of a genesis, grant or fee kind. */
  memo: string
}

export interface Block extends UnsignedBlock {
  /** Ed25519 signature (hex) over SIGN_DOMAIN || canonical bytes. */
  sig: string
}

/** Why a block or message was refused; sync.ts counts rejections by these names. */
export type RejectReason =
  | 'malformed'
  | 'oversized'
  | 'bad-signature'
  | 'bad-seq'
  | 'bad-ts'
  | 'gap'
  | 'bad-link'
  | 'bad-type'
  | 'bad-amount'
  | 'bad-fee'
  | 'self-transfer'
  | 'unknown-ref'
  | 'replay'
  | 'overspend'
  | 'bad-grant'
  | 'double-spend'
  /** Not a verdict on the block: this agent could not write it (storage full or failing). */
  | 'store-failed'

export class LedgerError extends Error {
  constructor(readonly reason: RejectReason, detail: string) {
    super(`${reason}: ${detail}`)
  }
}

const enc = new TextEncoder()

/**
 * Canonical encoding: fixed field order, big-endian integers, length-prefixed strings. Unlike
 * JSON it has exactly one byte form per block, so every implementation hashes the same bytes.
 */
export function encodeBlock(b: UnsignedBlock): Uint8Array {
  const account = enc.encode(b.account)
  const type = enc.encode(b.type)
  const counterparty = enc.encode(b.counterparty)
  const memo = enc.encode(b.memo)
  const size = 1 + 2 + account.length + 8 + 32 + 1 + type.length + 8 + 8 + 2 + counterparty.length + 32 + 8 + 2 + memo.length
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let at = 0
  const u8 = (n: number) => { view.setUint8(at, n); at += 1 }
  const u16 = (n: number) => { view.setUint16(at, n); at += 2 }
  const u64 = (n: number) => { view.setBigUint64(at, BigInt(n)); at += 8 }
  const raw = (bytes: Uint8Array) => { out.set(bytes, at); at += bytes.length }
  u8(b.v)
  u16(account.length); raw(account)
  u64(b.seq)
  raw(hexToBytes(b.prev))
  u8(type.length); raw(type)
  u64(b.amount)
  u64(b.fee)
  u16(counterparty.length); raw(counterparty)
  raw(hexToBytes(b.ref))
  u64(b.ts)
  u16(memo.length); raw(memo)
  return out
}

export function hashBlock(b: UnsignedBlock): string {
  return bytesToHex(sha256(encodeBlock(b)))
}

function signingBytes(b: UnsignedBlock): Uint8Array {
  const body = encodeBlock(b)
  const out = new Uint8Array(SIGN_DOMAIN.length + body.length)
  out.set(SIGN_DOMAIN)
  out.set(body, SIGN_DOMAIN.length)
  return out
}

export async function signBlock(b: UnsignedBlock, key: PrivateKey): Promise<Block> {
  checkShape(b)
  const sig = await key.sign(signingBytes(b))
  return { ...pick(b), sig: bytesToHex(sig) }
}

/** True when sig is the account's own signature over the block. */
export async function verifyBlockSignature(b: Block): Promise<boolean> {
  try {
    const key = peerIdFromString(b.account).publicKey
    if (key == null || key.type !== 'Ed25519') return false
    return await key.verify(signingBytes(b), hexToBytes(b.sig))
  } catch {
    return false
  }
}

const isHash = (x: unknown): x is string => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)
const isUint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0
const isId = (x: unknown): x is string => typeof x === 'string' && x.length <= MAX_ID_CHARS && /^[1-9A-HJ-NP-Za-km-z]*$/.test(x)

/** Field-level validity of an unsigned block; throws 'malformed' so callers can count it. */
export function checkShape(x: any): asserts x is UnsignedBlock {
  const bad = (what: string): never => { throw new LedgerError('malformed', what) }
  if (x == null || typeof x !== 'object') bad('not an object')
  if (x.v !== BLOCK_VERSION) bad(`version ${x.v}`)
  if (!isId(x.account) || x.account === '') bad('account')
  if (!isUint(x.seq)) bad('seq')
  if (!isHash(x.prev)) bad('prev')
  if (!BLOCK_TYPES.includes(x.type)) bad('type')
  if (!isUint(x.amount)) bad('amount')
  if (!isUint(x.fee)) bad('fee')
  if (!isId(x.counterparty)) bad('counterparty')
  if (!isHash(x.ref)) bad('ref')
  if (!isUint(x.ts)) bad('ts')
  if (typeof x.memo !== 'string' || enc.encode(x.memo).length > MAX_MEMO_BYTES) bad('memo')
}

/** Parses untrusted input into a Block (unknown fields dropped) or throws LedgerError('malformed'). */
export function parseBlock(x: unknown): Block {
  checkShape(x)
  const sig = (x as any).sig
  if (typeof sig !== 'string' || !/^[0-9a-f]{128}$/.test(sig)) throw new LedgerError('malformed', 'sig')
  return { ...pick(x), sig }
}

function pick(b: UnsignedBlock): UnsignedBlock {
  const { v, account, seq, prev, type, amount, fee, counterparty, ref, ts, memo } = b
  return { v, account, seq, prev, type, amount, fee, counterparty, ref, ts, memo }
}
