import { hashBlock, LedgerError } from '../../ledger/block.ts'
import type { Ledger } from '../../ledger/ledger.ts'

/**
 * The draft's mentor bonus, claimed for every agent this one helped (a payment of at least
 * minHelp) that later earned from a third party; the grant rules check the same facts.
 */
export async function claimMentorBonuses (ledger: Ledger): Promise<number> {
  const me = ledger.id
  const minHelp = ledger.policy.grants.mentor.minHelp
  const done = new Set(ledger.blocks(me).filter(b => b.type === 'grant' && b.memo === 'mentor').map(b => b.counterparty))
  let claimed = 0
  for (const { account } of ledger.accounts()) {
    if (account === me || done.has(account) || ledger.isFlagged(account)) continue
    const blocks = ledger.blocks(account)
    const helped = blocks.findIndex(b => b.type === 'receive' && b.counterparty === me && b.amount >= minHelp)
    const success = helped < 0 ? undefined : blocks.slice(helped + 1).find(b => b.type === 'receive' && b.counterparty !== me)
    if (success == null) continue
    try {
      await ledger.claimGrant('mentor', { counterparty: account, ref: hashBlock(success) })
      claimed++
    } catch (err) {
      if ((err as LedgerError).reason !== 'bad-grant') throw err
    }
  }
  return claimed
}
