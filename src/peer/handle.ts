import type { AgentEvent, AgentSnapshot } from './types.ts'
import type { AgentService } from './service.ts'

export interface ProfileUpdate { name?: string, owner?: string, wants?: string[], offers?: string[] }

/** What a UI (the Svelte app) or the HTTP API holds of a running agent. */
export interface AgentHandle {
  snapshot: () => AgentSnapshot
  /** Subscribe to an event; returns the unsubscribe function. */
  on: (event: AgentEvent, listener: () => void) => () => void
  sendTavern: (text: string) => Promise<void>
  /** Direct message over a stream to one agent; rejects with a readable reason if it can't be delivered. */
  sendDirect: (to: string, text: string) => Promise<void>
  setProfile: (update: ProfileUpdate) => Promise<void>
  /** A composed service by name (ledger, shard server, …), or undefined if this agent has none. */
  service: <T extends AgentService>(name: string) => T | undefined
  stop: () => Promise<void>
}

/**
 * The browser side of "one agent per profile": the tab that holds the Web Lock runs the agent;
 * another tab of the same profile waits and may ask to take over.
 */
export type TabRole =
  | { kind: 'starting' }
  | { kind: 'running', agent: AgentHandle }
  | { kind: 'elsewhere', takeOver: () => void }
  | { kind: 'failed', error: string }
