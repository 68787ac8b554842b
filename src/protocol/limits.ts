/** Limits every implementation enforces; PROTOCOL.md lists the same numbers. */
export const LIMITS = {
  /** Largest encoded envelope accepted on a gossip topic or a small-message stream. */
  maxEnvelopeBytes: 16 * 1024,
  /** Envelopes more than this far from the receiver's clock are stale (replay window). */
  maxClockSkewMs: 5 * 60 * 1000,
  maxTextChars: 2000,
  maxNameChars: 48,
  maxOwnerChars: 128,
  maxListItems: 32,
  maxItemChars: 64,
  /** Per-sender budget: a burst of this many messages, refilled at `ratePerSecond`. */
  rateBurst: 20,
  ratePerSecond: 5
} as const
