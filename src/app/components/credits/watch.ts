import type { AgentHandle } from '../../../peer/handle.ts'
import type { LedgerService } from '../../../peer/services/ledger-service.ts'
import type { LedgerView } from '../../../peer/services/ledger-view.ts'

/**
 * Calls `onView` with the ledger's view now and after changes, at most every 200 ms: a sync
 * burst brings hundreds of blocks, and one view per burst is all a person can read.
 */
export function watchLedger (agent: AgentHandle, onView: (v: LedgerView) => void): () => void {
  const svc = agent.service<LedgerService>('ledger')
  if (svc == null) return () => {}
  let timer: ReturnType<typeof setTimeout> | undefined
  const off = agent.on('change', () => {
    timer ??= setTimeout(() => { timer = undefined; onView(svc.view()) }, 200)
  })
  onView(svc.view())
  return () => { off(); clearTimeout(timer) }
}
