// Before an agent that has signed blocks before signs again, it asks its peers for the rest of
// its own chain. Its stored chain may be behind the one the mesh holds: a data directory
// restored from a backup, a ledger file repaired or deleted while the key was kept, an agent
// copied to a second machine. Signing the next block from a stale head would put a second
// block at a seq the mesh already has: a fork, and a double-spend proof against an honest agent.

/** How far the check has got; `unconfirmed` means no peer answered before the deadline. */
export type OwnChainState = 'checking' | 'confirmed' | 'unconfirmed' | 'new'

export interface OwnChainStatus {
  state: OwnChainState
  /** Peers that answered the question (with blocks or without). */
  answered: number
}

/** Peers that must have answered before signing goes on, where that many are around. */
export const CONFIRMING_PEERS = 2
/** Signing goes on after this long even if too few peers answered: an agent alone must still work. */
export const CONFIRM_TIMEOUT_MS = 10_000

export interface OwnChainPorts {
  /** Agents known now. */
  peers: () => string[]
  /** Called with each agent that appears later. */
  onNewPeer: (listener: (peer: string) => void) => void
  /** Asks one peer for whatever of the own chain lies beyond our head, and takes it in; throws when the peer did not answer. */
  catchUp: (peer: string) => Promise<void>
  /** A one-shot timer the caller clears on stop. */
  later: (ms: number, fn: () => void) => void
}

/**
 * Resolves once `CONFIRMING_PEERS` peers answered, or every peer known has been asked and at
 * least one answered, or `CONFIRM_TIMEOUT_MS` passed. `status` follows along for the UI.
 */
export class OwnChainCheck {
  readonly status: OwnChainStatus = { state: 'checking', answered: 0 }
  readonly done: Promise<void>
  private readonly asked = new Set<string>()
  private readonly pending = new Set<string>()
  private finish!: () => void

  constructor (private readonly ports: OwnChainPorts, timeoutMs = CONFIRM_TIMEOUT_MS) {
    this.done = new Promise(resolve => { this.finish = resolve })
    ports.later(timeoutMs, () => { this.end(this.status.answered > 0 ? 'confirmed' : 'unconfirmed') })
    ports.onNewPeer(peer => { this.ask(peer) })
    for (const peer of ports.peers()) this.ask(peer)
  }

  private ask (peer: string): void {
    if (this.status.state !== 'checking' || this.asked.has(peer)) return
    this.asked.add(peer)
    this.pending.add(peer)
    void this.ports.catchUp(peer).then(() => { this.status.answered++ }, () => {}).finally(() => {
      this.pending.delete(peer)
      const everyoneAsked = this.ports.peers().every(p => this.asked.has(p))
      if (this.status.answered >= CONFIRMING_PEERS || (this.status.answered > 0 && this.pending.size === 0 && everyoneAsked)) this.end('confirmed')
    })
  }

  private end (state: OwnChainState): void {
    if (this.status.state !== 'checking') return
    this.status.state = state
    this.finish()
  }
}
