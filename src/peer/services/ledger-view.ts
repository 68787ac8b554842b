import { hashBlock, type Block, type RejectReason } from '../../ledger/block.ts'
import type { AccountState, BalancePoint } from '../../ledger/chain.ts'
import type { Audit, Ledger } from '../../ledger/ledger.ts'
import { parseWorkMemo } from '../../ledger/receipts.ts'
import type { OwnChainStatus } from './own-chain.ts'

/** One credit movement between two agents, as the dashboard shows it live. */
export interface Flow {
  hash: string
  from: string
  to: string
  amount: number
  memo: string
  ts: number
  /** The payee's receive is known: both signatures are in. */
  acknowledged: boolean
}

export interface AccountRow extends AccountState {
  flagged: boolean
  /** EigenTrust score from this agent's point of view, 0..1. */
  reputation: number
}

export interface HistoryRow {
  hash: string
  seq: number
  ts: number
  type: Block['type']
  amount: number
  fee: number
  counterparty: string
  memo: string
  /** Sends only: whether the payee has acknowledged it. */
  acknowledged?: boolean
  /** A payment for inference (the send, or the receive of one): the session and the tokens × layers it settles up to. */
  work?: { session: string, units: number }
}

export interface LedgerRejection { reason: RejectReason | string, detail: string, from?: string, at: number }

/** Plain data for the credits view and the API; amounts in micro-credits. */
export interface LedgerView {
  id: string
  self: AccountState
  accounts: AccountRow[]
  history: HistoryRow[]
  series: BalancePoint[]
  flows: Flow[]
  flagged: string[]
  /** Blocks and messages accepted and rejected, by reason. */
  counters: Record<string, number>
  recent: LedgerRejection[]
  audit: Audit
  /** Whether peers were asked for the rest of the own chain before this agent signed again. */
  ownChain: OwnChainStatus
}

export function historyOf (ledger: Ledger, acked: ReadonlySet<string>, account = ledger.id): HistoryRow[] {
  return ledger.blocks(account).map(b => {
    const hash = hashBlock(b)
    return {
      hash, seq: b.seq, ts: b.ts, type: b.type, amount: b.amount, fee: b.fee, counterparty: b.counterparty, memo: b.memo,
      acknowledged: b.type === 'send' ? acked.has(hash) : undefined,
      work: b.type === 'send' ? parseWorkMemo(b.memo) : b.type === 'receive' ? parseWorkMemo(ledger.block(b.ref)?.memo ?? '') : undefined
    }
  }).reverse()
}
