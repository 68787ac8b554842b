// Who the agent is and what its owner allows it. The limits are enforced by code (guard.ts,
// tasks.ts), never by the prompt: the prompt is only how it talks.

export interface Persona {
  name: string
  /** A short system prompt for its model. */
  prompt: string
  wants: string[]
  offers: string[]
}

export interface Limits {
  /** Share of CPU/GPU time it may give to others' tasks, 0..1 (0: it serves none). */
  computeShare: number
  /** Credits it may spend per UTC day, in micro-credits. */
  spendPerDay: number
  /** Task kinds it accepts ('chat': answer a prompt with its model; 'transfer': pay credits). */
  acceptTasks: string[]
  /** Whether it may answer in the public tavern (direct messages are always allowed). */
  tavern: boolean
  /** Replies and greetings per minute, all together. */
  messagesPerMinute: number
  /** Tokens its model may generate for one reply or task. */
  maxTokens: number
}

export interface AutonomyConfig {
  enabled: boolean
  persona: Persona
  limits: Limits
  /** Where its model is (a file path in Node, a URL in a browser); without one it does not talk. */
  model?: string
  /**
   * A model whose blocks it contributes to the mesh (a file, URL, or manifest id the mesh
   * serves); placement picks the blocks where the mesh is thinnest. Needs a compute share > 0.
   */
  host?: string
}

export const TASK_KINDS = ['chat', 'transfer'] as const

export const DEFAULT_LIMITS: Limits = {
  computeShare: 0.25,
  spendPerDay: 1_000_000,
  acceptTasks: ['chat'],
  tavern: true,
  messagesPerMinute: 6,
  maxTokens: 48
}

const str = (v: unknown, max: number, fallback: string): string =>
  typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, max) : fallback
const list = (v: unknown, fallback: string[]): string[] =>
  Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string' && s.trim() !== '').map(s => s.trim().slice(0, 64)).slice(0, 32) : fallback
const num = (v: unknown, min: number, max: number, fallback: number): number =>
  typeof v === 'number' && Number.isFinite(v) ? Math.min(max, Math.max(min, v)) : fallback

/**
 * Reads an owner's config (a JSON file, the settings form) leniently but into safe bounds:
 * a missing field takes its default, a number outside its range is clamped, unknown task kinds are dropped.
 * `spendPerDay` is given in credits here (what owners type), stored in micro-credits.
 */
export function parseConfig (raw: any, fallbackName: string): AutonomyConfig {
  const l = raw?.limits ?? {}
  const p = raw?.persona ?? {}
  return {
    enabled: raw?.enabled !== false,
    persona: {
      name: str(p.name, 48, fallbackName),
      prompt: str(p.prompt, 1000, 'You are a friendly agent in the ClawNet tavern. Answer briefly.'),
      wants: list(p.wants, []),
      offers: list(p.offers, [])
    },
    limits: {
      computeShare: num(l.computeShare, 0, 1, DEFAULT_LIMITS.computeShare),
      spendPerDay: Math.round(num(l.creditsPerDay, 0, 1e6, DEFAULT_LIMITS.spendPerDay / 1e6) * 1e6),
      acceptTasks: list(l.acceptTasks, DEFAULT_LIMITS.acceptTasks).filter(k => (TASK_KINDS as readonly string[]).includes(k)),
      tavern: typeof l.tavern === 'boolean' ? l.tavern : DEFAULT_LIMITS.tavern,
      messagesPerMinute: Math.round(num(l.messagesPerMinute, 0, 60, DEFAULT_LIMITS.messagesPerMinute)),
      maxTokens: Math.round(num(l.maxTokens, 1, 512, DEFAULT_LIMITS.maxTokens))
    },
    model: typeof raw?.model === 'string' && raw.model.trim() !== '' ? raw.model.trim() : undefined,
    host: typeof raw?.host === 'string' && raw.host.trim() !== '' ? raw.host.trim() : undefined
  }
}

/** The inverse of parseConfig, for the settings form and config files. */
export function configToJson (c: AutonomyConfig): unknown {
  const { spendPerDay, ...rest } = c.limits
  return { enabled: c.enabled, persona: c.persona, limits: { ...rest, creditsPerDay: spendPerDay / 1e6 }, model: c.model }
}
