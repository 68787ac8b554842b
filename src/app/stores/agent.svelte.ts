import type { AgentHandle, TabRole } from '../../peer/handle.ts'
import type { AgentSnapshot } from '../../peer/types.ts'

/**
 * The tab's view of its agent. Snapshots are replaced whole (never mutated), so they are held as
 * raw state: deep proxies would only cost time on every refresh.
 */
class AgentStore {
  role = $state.raw<TabRole>({ kind: 'starting' })
  snapshot = $state.raw<AgentSnapshot | undefined>(undefined)

  private unsubscribe: Array<() => void> = []
  private pending = false

  get agent (): AgentHandle | undefined {
    return this.role.kind === 'running' ? this.role.agent : undefined
  }

  setRole (role: TabRole): void {
    for (const off of this.unsubscribe) off()
    this.unsubscribe = []
    this.role = role
    if (role.kind !== 'running') {
      this.snapshot = undefined
      return
    }
    const agent = role.agent
    this.snapshot = agent.snapshot()
    const refresh = (): void => this.scheduleRefresh(agent)
    this.unsubscribe = [agent.on('change', refresh), agent.on('chat', refresh), agent.on('reject', refresh)]
  }

  /**
   * Events can arrive in bursts (a gossip round, a flood being rejected): coalesce them into one
   * snapshot per frame. Hidden tabs get no animation frames, so they fall back to a timer and
   * still stay current for whoever reads the page (tests, a tab switched back to).
   */
  private scheduleRefresh (agent: AgentHandle): void {
    if (this.pending) return
    this.pending = true
    const run = (): void => {
      this.pending = false
      if (this.agent === agent) this.snapshot = agent.snapshot()
    }
    if (document.visibilityState === 'visible') requestAnimationFrame(run)
    else setTimeout(run, 250)
  }
}

export const agentStore = new AgentStore()
