// The economic parameters of the AGLX credit draft as one object. Every rule that depends on
// it is checked the same way by every agent, so all agents of one mesh must run the same
// policy: it is part of the protocol, not a local preference.
import { CREDIT, type UnsignedBlock } from './block.ts'

const DAY = 24 * 3600 * 1000

export const FEE_KINDS = ['transaction', 'registration', 'inactivity', 'broadcast', 'data', 'priority'] as const
export type FeeKind = (typeof FEE_KINDS)[number]
/** Fees an agent declares in a block of type 'fee' because no verifier can observe what caused them. */
export const DECLARED_FEE_KINDS = ['broadcast', 'data', 'priority'] as const

export interface Policy {
  fees: {
    /** The draft: "konzeptionell dokumentiert, aber ... noch nicht aktiv implementiert". */
    enabled: boolean
    /** Per transfer (send) and per task order (reserve). */
    transaction: number
    /** Once, in the genesis block. */
    registration: number
    /** Per full inactivityPeriodMs without a block, charged in the next block. */
    inactivity: number
    inactivityPeriodMs: number
    /** Per untargeted broadcast. */
    broadcast: number
    /** Per started dataUnitBytes of payload. */
    data: number
    dataUnitBytes: number
    /** For a task at priority level priorityLevel. */
    priority: number
    priorityLevel: number
  }
  /** Fees are burned: there is no account nobody owns, so a pool would need a trusted keeper. */
  feeSink: 'burn'
  grants: {
    registration: number
    /**
     * Leading zero bits the genesis hash must have (its ref is the nonce): free registration
     * grants invite identity farming, so a public mesh should make each identity cost work.
     */
    registrationWorkBits: number
    /** Low-budget allowance: once per UTC day while spendable < below. */
    daily: { amount: number; below: number }
    /** Once per inactiveMs, to an account that made no block for inactiveMs. */
    reactivation: { amount: number; inactiveMs: number }
    /** To a mentor once per mentee that, after the mentor's help of at least minHelp, earned from a third party. */
    mentor: { bonus: number; minHelp: number }
    /** For each double-spend proof an agent found, at most maxPerDay a day. */
    monitoring: { amount: number; maxPerDay: number }
  }
  /** Overdraft: min(max, floor(received_total * ratio)); zero unless policy says so. */
  creditLimit: { ratio: number; max: number }
  /** After this, the client releases an unsettled task reservation. */
  taskTimeoutMs: number
  work: {
    /** Micro-credits per (token × layer) served. */
    pricePerUnit: number
    /** The server asks for settlement after this many unsettled units and stops serving at twice it. */
    settleEveryUnits: number
  }
  /** How far a block's ts may run ahead of the verifier's clock. */
  maxClockSkewMs: number
}

export const DEFAULT_POLICY: Policy = Object.freeze({
  fees: {
    enabled: false,
    transaction: CREDIT / 100,
    registration: CREDIT,
    inactivity: CREDIT / 2,
    inactivityPeriodMs: 30 * DAY,
    broadcast: CREDIT / 10,
    data: CREDIT,
    dataUnitBytes: 100 * 1024,
    priority: CREDIT / 5,
    priorityLevel: 5
  },
  feeSink: 'burn',
  grants: {
    registration: 10 * CREDIT,
    registrationWorkBits: 0,
    daily: { amount: CREDIT, below: CREDIT },
    reactivation: { amount: 5 * CREDIT, inactiveMs: 30 * DAY },
    mentor: { bonus: 2 * CREDIT, minHelp: CREDIT },
    monitoring: { amount: CREDIT / 10, maxPerDay: 10 }
  },
  creditLimit: { ratio: 0, max: 0 },
  taskTimeoutMs: 10 * 60 * 1000,
  work: { pricePerUnit: 1, settleEveryUnits: 50_000 },
  maxClockSkewMs: 10 * 60 * 1000
}) as Policy

/** DEFAULT_POLICY with fees switched on, for networks (and tests) that want them. */
export function withFees(base: Policy = DEFAULT_POLICY): Policy {
  return { ...base, fees: { ...base.fees, enabled: true } }
}

export const utcDay = (ts: number) => Math.floor(ts / DAY)

/**
 * The fee a block must carry, exactly (a 'fee' block: this plus a positive multiple of
 * its kind's rate): verifiers reject under- and overpayment so every agent derives the same burned total.
 */
export function requiredFee(policy: Policy, block: UnsignedBlock, prevTs: number | undefined): number {
  const f = policy.fees
  if (!f.enabled) return 0
  let fee = 0
  if (block.type === 'genesis') fee += f.registration
  if (block.type === 'send' || block.type === 'reserve') fee += f.transaction
  if (prevTs !== undefined) fee += f.inactivity * Math.floor((block.ts - prevTs) / f.inactivityPeriodMs)
  return fee
}

/** The unit rate of a declared fee kind; a 'fee' block carries a positive multiple of it. */
export function declaredFeeRate(policy: Policy, kind: string): number | undefined {
  if (!(DECLARED_FEE_KINDS as readonly string[]).includes(kind)) return undefined
  return policy.fees[kind as (typeof DECLARED_FEE_KINDS)[number]]
}

/** What an agent owes for one payload of `bytes` (the draft: 1 credit per 100 KB started). */
export function dataFee(policy: Policy, bytes: number): number {
  return policy.fees.enabled ? Math.ceil(bytes / policy.fees.dataUnitBytes) * policy.fees.data : 0
}
