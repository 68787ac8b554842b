import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { AgentNode } from './node.ts'

/**
 * Keeps this agent connected to its relay: dials at start, and again with capped backoff
 * whenever the link drops, so a relay restart never strands anyone.
 */
export class RelayLink {
  readonly addrs: Multiaddr[]
  private timer?: ReturnType<typeof setTimeout>
  private backoffMs = 500
  private stopped = false
  private dialing = false

  constructor (private readonly node: AgentNode, relayAddrs: string[], private readonly onChange: () => void) {
    this.addrs = relayAddrs.map(a => multiaddr(a))
    if (this.addrs.length === 0) throw new Error('no relay address: pass the relay multiaddr (see `clawnet relay` output)')
    node.addEventListener('peer:disconnect', evt => {
      if (this.isRelay(evt.detail.toString())) {
        this.onChange()
        this.schedule(200)
      }
    })
  }

  relayIds (): string[] {
    return this.addrs.map(a => a.getComponents().findLast(c => c.name === 'p2p')?.value).filter((v): v is string => v != null)
  }

  /** Whether `peerId` is one of our relays rather than an agent. */
  isRelay (peerId: string): boolean {
    return this.relayIds().includes(peerId)
  }

  connected (): boolean {
    return this.node.getConnections().some(c => c.status === 'open' && this.isRelay(c.remotePeer.toString()))
  }

  start (): void {
    this.schedule(0)
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private schedule (ms: number): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { void this.tick() }, ms)
  }

  private async tick (): Promise<void> {
    if (this.stopped || this.dialing) return
    if (this.connected()) {
      this.backoffMs = 500
      this.schedule(5000)
      return
    }
    this.dialing = true
    try {
      for (const addr of this.addrs) {
        try {
          await this.node.dial(addr, { signal: AbortSignal.timeout(8000) })
          this.backoffMs = 500
          this.onChange()
          break
        } catch {
          // Next address, or back off below; the relay may simply be restarting.
        }
      }
    } finally {
      this.dialing = false
    }
    this.backoffMs = Math.min(this.backoffMs * 2, 10_000)
    this.schedule(this.connected() ? 5000 : this.backoffMs)
  }
}
