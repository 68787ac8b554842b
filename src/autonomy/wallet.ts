import type { AgentHandle } from '../peer/handle.ts'

/** The one ledger call autonomy needs; the ledger service provides it when the agent has one. */
export interface Wallet {
  transfer: (to: string, amount: number, reason: string) => Promise<unknown>
}

/** The agent's ledger as a Wallet, if it has one (the service itself or the Ledger it holds). */
export function findWallet (agent: AgentHandle | undefined): Wallet | undefined {
  const s: any = agent?.service('ledger')
  for (const c of [s, s?.ledger]) if (typeof c?.transfer === 'function') return { transfer: async (to, amount, reason) => await c.transfer(to, amount, reason) }
  return undefined
}
