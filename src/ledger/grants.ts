// Credits that nobody pays: the registration grant (in genesis) and the draft's failsafes.
// Each is a 'grant' block whose memo names the rule; its eligibility follows from chains
// (and, for monitoring, a double-spend proof) alone, so every agent reaches the same verdict.
import { hashBlock, LedgerError, ZERO_HASH, type Block, type UnsignedBlock } from './block.ts'
import { utcDay } from './policy.ts'
import { MissingDependency, type Chain, type VerifyContext } from './chain.ts'

export const GRANT_KINDS = ['daily', 'reactivation', 'mentor', 'monitoring'] as const
export type GrantKind = (typeof GRANT_KINDS)[number]

/** Per-chain facts the grant rules need, updated as grant blocks are appended. */
export class GrantMemory {
  lastDailyDay = -1
  lastReactivationTs = -Infinity
  readonly mentees = new Set<string>()
  readonly proofsClaimed = new Set<string>()
  monitoringDay = -1
  monitoringCount = 0

  record(b: Block): void {
    if (b.memo === 'daily') this.lastDailyDay = utcDay(b.ts)
    if (b.memo === 'reactivation') this.lastReactivationTs = b.ts
    if (b.memo === 'mentor') this.mentees.add(b.counterparty)
    if (b.memo === 'monitoring') {
      this.proofsClaimed.add(b.ref)
      if (utcDay(b.ts) !== this.monitoringDay) { this.monitoringDay = utcDay(b.ts); this.monitoringCount = 0 }
      this.monitoringCount++
    }
  }
}

const refuse = (why: string): never => { throw new LedgerError('bad-grant', why) }

export function grantAmount(kind: GrantKind, g: VerifyContext['policy']['grants']): number {
  return kind === 'mentor' ? g.mentor.bonus : g[kind].amount
}

/** Throws unless block `b` (type 'grant') may follow `chain`'s current head. */
export function checkGrant(b: Block, chain: Chain, ctx: VerifyContext): void {
  const g = ctx.policy.grants
  const kind = b.memo as GrantKind
  if (!GRANT_KINDS.includes(kind)) refuse(`no grant kind '${b.memo}'`)
  if (b.amount !== grantAmount(kind, g)) refuse(`${kind} grants exactly ${grantAmount(kind, g)}`)
  if (kind !== 'mentor' && b.counterparty !== '') refuse('only a mentor grant names a counterparty')
  const s = chain.claimed
  const mem = chain.grantMemory
  switch (kind) {
    case 'daily':
      if (b.ref !== ZERO_HASH) refuse('daily grant has no ref')
      if (s.balance - s.pending >= g.daily.below) refuse('daily allowance only below the low-budget line')
      if (utcDay(b.ts) <= mem.lastDailyDay) refuse('one daily allowance per UTC day')
      break
    case 'reactivation':
      if (b.ref !== ZERO_HASH) refuse('reactivation grant has no ref')
      if (b.ts - s.lastTs < g.reactivation.inactiveMs) refuse('account was not inactive long enough')
      if (b.ts - mem.lastReactivationTs < g.reactivation.inactiveMs) refuse('one reactivation per period')
      break
    case 'mentor':
      checkMentor(b, ctx, mem)
      break
    case 'monitoring':
      if (!ctx.hasProof(b.ref)) throw new MissingDependency('', `proof ${b.ref} not known`)
      if (mem.proofsClaimed.has(b.ref)) refuse('proof already claimed on this chain')
      if (utcDay(b.ts) === mem.monitoringDay && mem.monitoringCount >= g.monitoring.maxPerDay) refuse('monitoring cap for the day reached')
      break
  }
}

/**
 * A mentor earns its bonus when the mentee it helped (a receive of at least minHelp from the
 * mentor) later earns from a third party: `ref` is that later receive on the mentee's chain.
 */
function checkMentor(b: Block, ctx: VerifyContext, mem: GrantMemory): void {
  const mentor = b.account
  const mentee = b.counterparty
  if (mentee === '' || mentee === mentor) refuse('mentor grant needs a mentee')
  if (mem.mentees.has(mentee)) refuse('one bonus per mentee')
  const success = ctx.lookup(b.ref)
  const menteeChain = ctx.chain(mentee)
  const at = menteeChain?.seqOf(b.ref)
  if (success == null || menteeChain == null || at == null) throw new MissingDependency(mentee, `mentee block ${b.ref} not known`)
  if (success.type !== 'receive' || success.counterparty === mentor) refuse('success must be earnings from a third party')
  const helped = menteeChain.blocks.slice(0, at).some(x => x.type === 'receive' && x.counterparty === mentor && x.amount >= ctx.policy.grants.mentor.minHelp)
  if (!helped) refuse('mentor did not help this mentee before its success')
}

export function leadingZeroBits(hex: string): number {
  let bits = 0
  for (const ch of hex) {
    const nibble = parseInt(ch, 16)
    if (nibble !== 0) return bits + Math.clz32(nibble) - 28
    bits += 4
  }
  return bits
}

/** Finds a genesis ref (nonce) that gives the block's hash `bits` leading zero bits. */
export function mineGenesis(b: UnsignedBlock, bits: number): UnsignedBlock {
  for (let n = 0; ; n++) {
    const candidate = { ...b, ref: n.toString(16).padStart(64, '0') }
    if (bits === 0 || leadingZeroBits(hashBlock(candidate)) >= bits) return candidate
  }
}
