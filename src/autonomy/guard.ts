// The owner's limits, as code. Nothing a message says can change what these functions return:
// they read only the limits, the clock and what the agent itself has done.
import type { Limits } from './persona.ts'

const DAY_MS = 86_400_000
const utcDay = (ts: number): number => Math.floor(ts / DAY_MS)

/** Credits spent per UTC day, as the agent recorded them when it spent them. */
export class SpendMeter {
  private day = -1
  private spent = 0

  spentToday (now = Date.now()): number {
    return utcDay(now) === this.day ? this.spent : 0
  }

  /** True (and recorded) only when `amount` fits in what is left of today's limit. */
  trySpend (amount: number, limits: Limits, now = Date.now()): boolean {
    if (!Number.isSafeInteger(amount) || amount <= 0) return false
    const spent = this.spentToday(now)
    if (spent + amount > limits.spendPerDay) return false
    this.day = utcDay(now)
    this.spent = spent + amount
    return true
  }

  /** Gives back a spend whose transfer did not happen. */
  refund (amount: number, now = Date.now()): void {
    if (utcDay(now) === this.day) this.spent = Math.max(0, this.spent - amount)
  }
}

/** Sliding one-minute window over everything the agent says on its own. */
export class MessageThrottle {
  private readonly sent: number[] = []

  allow (limits: Limits, now = Date.now()): boolean {
    while (this.sent.length > 0 && now - this.sent[0] >= 60_000) this.sent.shift()
    if (this.sent.length >= limits.messagesPerMinute) return false
    this.sent.push(now)
    return true
  }
}

/**
 * The owner's share of CPU/GPU as a duty cycle: after a task that computed for t ms the agent
 * rests t·(1−share)/share ms before it starts the next one, and never runs two at once.
 */
export class ComputeBudget {
  private busy = false
  private restUntil = 0

  /** Why it cannot start a task now, or undefined when it can (and is then busy). */
  begin (limits: Limits, now = Date.now()): string | undefined {
    if (limits.computeShare <= 0) return 'its owner gives no compute to others'
    if (this.busy) return 'busy with another task'
    if (now < this.restUntil) return `resting to keep to a ${Math.round(limits.computeShare * 100)}% compute share (${Math.ceil((this.restUntil - now) / 1000)} s)`
    this.busy = true
    return undefined
  }

  end (computeMs: number, limits: Limits, now = Date.now()): void {
    this.busy = false
    const share = Math.max(limits.computeShare, 0.01)
    this.restUntil = now + computeMs * (1 - share) / share
  }
}

/**
 * Refuses text that would leak what the agent must keep: its private key in any encoding it
 * knows of. A model that was talked into "printing its key" cannot get the key out this way.
 */
export function leaksSecret (text: string, secrets: string[]): boolean {
  const squashed = text.replace(/\s+/g, '')
  return secrets.some(s => s.length >= 16 && (text.includes(s) || squashed.includes(s)))
}
