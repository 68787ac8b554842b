/** Token bucket per key: a burst, then a steady rate. Forgets idle keys so floods can't grow it. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (private readonly burst: number, private readonly perSecond: number, private readonly maxKeys = 10_000) {}

  take (key: string, now = Date.now()): boolean {
    let b = this.buckets.get(key)
    if (b == null) {
      if (this.buckets.size >= this.maxKeys) this.evictIdle(now)
      b = { tokens: this.burst, at: now }
      this.buckets.set(key, b)
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond)
    b.at = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  private evictIdle (now: number): void {
    const full = (this.burst / this.perSecond) * 1000
    for (const [k, b] of this.buckets) if (now - b.at > full) this.buckets.delete(k)
    if (this.buckets.size >= this.maxKeys) this.buckets.clear()
  }
}
