import { CREDIT } from '../../ledger/block.ts'

/** Micro-credits (what blocks carry) to credits (what people read and type). */
export function toCredits (micro: number): number {
  return micro / CREDIT
}

/**
 * Credits typed by a person or sent to the API, as exact micro-credits; undefined unless the
 * amount is positive and has at most six decimals, so nothing is silently rounded away.
 */
export function toMicro (credits: unknown): number | undefined {
  const n = typeof credits === 'string' && credits.trim() !== '' ? Number(credits) : credits
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return undefined
  const micro = Math.round(n * CREDIT)
  return Math.abs(micro - n * CREDIT) < 1e-6 && Number.isSafeInteger(micro) && micro > 0 ? micro : undefined
}

export function formatCredits (micro: number): string {
  const c = toCredits(micro)
  return c.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: Math.abs(c) < 1 && c !== 0 ? 6 : 2 })
}
