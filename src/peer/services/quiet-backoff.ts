/**
 * When a periodic message (anti-entropy gossip) is due: every `baseMs` while there is news, the
 * gap doubling with every send while there is none, up to `maxFactor` × `baseMs`. What an idle
 * agent sends is what every other agent must receive, verify and forward.
 */
export class QuietBackoff {
  private gapMs: number
  private due = 0

  constructor (private readonly baseMs: number, private readonly maxFactor: number) {
    this.gapMs = baseMs
  }

  /** Whether to send now; if so, the next send is one gap later, and the gap doubles. */
  take (now = Date.now()): boolean {
    if (now < this.due) return false
    this.due = now + this.gapMs
    this.gapMs = Math.min(2 * this.gapMs, this.maxFactor * this.baseMs)
    return true
  }

  /** Something changed: back to the full rate, starting at the next chance. */
  reset (): void {
    this.gapMs = this.baseMs
    this.due = 0
  }
}
