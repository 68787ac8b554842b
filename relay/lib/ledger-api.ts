import { peerIdFromString } from '@libp2p/peer-id'
import { LedgerError, MAX_MEMO_BYTES, type RejectReason } from '../../src/ledger/block.ts'
import type { AccountState } from '../../src/ledger/chain.ts'
import type { AgentHandle } from '../../src/peer/handle.ts'
import type { LedgerService } from '../../src/peer/services/ledger-service.ts'
import { toCredits, toMicro } from '../../src/peer/services/credits.ts'
import { HttpError, type Route } from './http-json.ts'

/** Why the ledger refused a transfer, as an HTTP status: 402 for money, 400 for the request itself. */
const STATUS: Partial<Record<RejectReason, number>> = { overspend: 402, 'self-transfer': 400, 'bad-amount': 400, malformed: 400 }

function account (s: AccountState, flagged: boolean) {
  return {
    id: s.account,
    owner: s.owner_id,
    balance: toCredits(s.balance),
    earned: toCredits(s.earned_total),
    spent: toCredits(s.spent_total),
    pending: toCredits(s.pending),
    spendable: toCredits(s.balance - s.pending),
    seq: s.seq,
    head: s.head,
    flagged
  }
}

/** The headless peer's credit endpoints; amounts in credits, blocks as on the wire (micro-credits). */
export function ledgerRoutes (agent: AgentHandle): Route[] {
  const ledger = (): LedgerService => {
    const svc = agent.service<LedgerService>('ledger')
    if (svc == null) throw new HttpError(503, 'this agent runs no ledger')
    return svc
  }
  const accountOf = (id: string) => {
    const l = ledger().ledger
    const s = l.account(id)
    if (s == null || s.seq < 0) throw new HttpError(404, `no chain known for ${id}`)
    return account(s, l.isFlagged(id))
  }
  return [
    { method: 'GET', path: /^\/v1\/ledger\/account$/, handle: () => accountOf(ledger().ledger.id) },
    { method: 'GET', path: /^\/v1\/ledger\/accounts$/, handle: () => ledger().view().accounts.map(a => ({ ...account(a, a.flagged), reputation: a.reputation })) },
    { method: 'GET', path: /^\/v1\/ledger\/accounts\/([^/]+)$/, handle: ({ params }) => accountOf(decodeURIComponent(params[0])) },
    {
      method: 'GET',
      path: /^\/v1\/ledger\/blocks$/,
      handle: ({ query }) => {
        const l = ledger().ledger
        const id = query.get('account') ?? l.id
        const from = Number(query.get('from') ?? 0)
        const to = query.has('to') ? Number(query.get('to')) : Infinity
        if (!Number.isSafeInteger(from) || from < 0 || !(to === Infinity || (Number.isSafeInteger(to) && to >= from))) throw new HttpError(400, '"from" and "to" must be sequence numbers with from <= to')
        return { account: id, blocks: l.blocks(id, from, to) }
      }
    },
    {
      method: 'GET',
      path: /^\/v1\/ledger\/diagnostics$/,
      handle: () => {
        const v = ledger().view()
        return { counters: v.counters, recent: v.recent, flagged: v.flagged, audit: v.audit, ownChain: v.ownChain }
      }
    },
    {
      method: 'POST',
      path: /^\/v1\/ledger\/transfer$/,
      handle: async ({ body }) => {
        const to = body?.to
        if (typeof to !== 'string') throw new HttpError(400, 'body must be {"to": "<agent id>", "amount": <credits>, "reason": "…"}')
        try {
          peerIdFromString(to)
        } catch {
          throw new HttpError(400, `"to" is not an agent id: ${to}`)
        }
        const amount = toMicro(body.amount)
        if (amount == null) throw new HttpError(400, '"amount" must be a positive number of credits with at most 6 decimals')
        const reason = body.reason ?? ''
        if (typeof reason !== 'string' || new TextEncoder().encode(reason).length > MAX_MEMO_BYTES) throw new HttpError(400, `"reason" must be a string of at most ${MAX_MEMO_BYTES} bytes`)
        try {
          const t = await ledger().transfer(to, amount, reason)
          return { hash: t.hash, acknowledged: t.acknowledged, reason: t.reason, block: t.block, receive: t.receive }
        } catch (err) {
          if (err instanceof LedgerError) throw new HttpError(STATUS[err.reason] ?? 422, err.message)
          throw err
        }
      }
    }
  ]
}
