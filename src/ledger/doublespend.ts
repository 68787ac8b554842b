// Two blocks that one key signed for the same place in its chain. Either alone may look
// valid; together they prove the owner forked its chain, so the pair is gossiped as evidence
// and anybody can check it without trusting the reporter.
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { hashBlock, parseBlock, verifyBlockSignature, type Block } from './block.ts'

export interface DoubleSpendProof {
  a: Block
  b: Block
}

/** Orders the pair by hash so both reporters of one fork produce the same proof id. */
export function makeProof(x: Block, y: Block): DoubleSpendProof {
  return hashBlock(x) < hashBlock(y) ? { a: x, b: y } : { a: y, b: x }
}

export function proofId(p: DoubleSpendProof): string {
  return bytesToHex(sha256(utf8ToBytes(`${hashBlock(p.a)}:${hashBlock(p.b)}`)))
}

/** Returns the forking account when the proof holds, else undefined; input may be untrusted. */
export async function verifyProof(input: unknown): Promise<string | undefined> {
  return (await parseProof(input))?.a.account
}

/**
 * The proof rebuilt from the parsed blocks when it holds, else undefined: what is kept and
 * passed on is only the signed fields, not whatever else the sender wrapped around them.
 */
export async function parseProof(input: unknown): Promise<DoubleSpendProof | undefined> {
  try {
    const a = parseBlock((input as any).a)
    const b = parseBlock((input as any).b)
    if (a.account !== b.account || a.seq !== b.seq) return undefined
    if (hashBlock(a) === hashBlock(b)) return undefined
    if (!(await verifyBlockSignature(a)) || !(await verifyBlockSignature(b))) return undefined
    return makeProof(a, b)
  } catch {
    return undefined
  }
}
