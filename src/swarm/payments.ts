// The swarm's port to a credit system. The client and the server speak only this interface, so
// inference runs the same with or without a ledger; an agent that has no payments port serves
// and uses the mesh for free (and a host without one never asks for receipts).

/** The client's signed statement of what one host served in one session (cumulative); PROTOCOL.md 13. */
export type { WorkReceipt } from '../ledger/receipts.ts'
import type { WorkReceipt } from '../ledger/receipts.ts'

/**
 * A client signs a receipt for a host at least every this many tokens the host served it (and
 * at the end of the session), not after every step: each receipt is a signature, a verification
 * and a message on the hop's critical path, for a few tokens' worth of micro-credits.
 */
export const RECEIPT_EVERY_TOKENS = 16

/**
 * How far the work a host has done may run ahead of the client's latest receipt, in tokens:
 * twice the signing period, so a receipt still on its way never stalls a step.
 */
export const UNSIGNED_TOKENS_ALLOWED = 2 * RECEIPT_EVERY_TOKENS

/** One payment the client made to a host for a session. */
export interface Settlement {
  server: string
  session: string
  /** Tokens × layers the payment brings the session up to. */
  units: number
  /** Micro-credits to the host, and the fee burned on top. */
  amount: number
  fee: number
  /** The host's receive came back: the payment carries both signatures. */
  acknowledged: boolean
  /** Why nothing could be paid (e.g. an overspend); the host will stop serving this client. */
  error?: string
}

/** The client's side: signs what each host served and pays for it. */
export interface ClientPayments {
  sign: (work: Omit<WorkReceipt, 'client' | 'ts' | 'sig'>) => Promise<WorkReceipt>
  /** Pays what `receipt` covers beyond what this session already paid; undefined when nothing is owed. */
  settle: (receipt: WorkReceipt) => Promise<Settlement | undefined>
}

/** The host's view of one session: what the client signed for and what it paid. */
export interface HostMeter {
  /** Takes a receipt; false for a forged, foreign or decreasing one (the same units again owe nothing more). */
  accept: (receipt: WorkReceipt) => Promise<boolean>
  /** Tokens × layers the latest accepted receipt covers. */
  readonly signedUnits: number
  /** Enough is unsettled that the host asks the client to pay. */
  readonly wantsSettlement: boolean
  /** So much is unsettled that the host stops serving until paid. */
  readonly mustPause: boolean
  /** The session ended: payments arriving later still land on the ledger, the meter is dropped. */
  close: () => void
}

export interface HostPayments {
  meter: (client: string, session: string) => HostMeter
}

/** Credits that moved for inference, from this agent's own records. */
export interface WorkCredits {
  /** Micro-credits received from clients, and paid to hosts (fees included). */
  earned: number
  spent: number
  byPeer: Record<string, { earned: number, spent: number }>
}

export interface Payments extends ClientPayments, HostPayments {
  credits: () => WorkCredits
}
