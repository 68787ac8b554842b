import type { AgentHandle } from '../../../peer/handle.ts'
import { formatBlocks } from '../../../swarm/shard-table.ts'
import type { SwarmService, SwarmView } from '../../../swarm/swarm-service.ts'

export type MeshModel = SwarmView['models'][number]

export function swarmOf (agent: AgentHandle | undefined): SwarmService | undefined {
  return agent?.service<SwarmService>('swarm')
}

/** "block 3" or "blocks 3-4": ranges are inclusive, as hosts announce them. */
export function blockRange (start: number, end: number): string {
  return start === end ? `block ${start}` : `blocks ${start}-${end}`
}

/** "blocks 3-4 are not served by anyone yet", naming every gap. */
const PHASES: Record<string, string> = {
  header: 'Reading the model header',
  manifest: 'Hashing the whole model (no manifest is published beside it)',
  verify: 'Checking the weights against the model manifest',
  blocks: 'Loading blocks'
}

/** What a hosting agent is doing while it loads, in words. */
export function phaseLabel (phase: string): string {
  return PHASES[phase] ?? phase
}

export function missingText (missing: Array<[number, number]>): string {
  const single = missing.length === 1 && missing[0][0] === missing[0][1]
  return `${formatBlocks(missing)} ${single ? 'is' : 'are'} not served by anyone yet`
}

/** Peer ids inside a message (failover reasons) replaced by the names people know them by. */
export function withNames (text: string, nameOf: (id: string) => string): string {
  return text.replace(/\b(12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{30,}\b/g, id => nameOf(id))
}

export interface PlainError { what: string, todo: string }

/** What went wrong with a mesh generation, in words a person can act on. */
export function plainError (err: unknown, nameOf: (id: string) => string): PlainError {
  const msg = withNames(err instanceof Error ? err.message : String(err), nameOf)
  if (msg.includes('does not cover this model')) {
    return { what: `Part of the model is not served: ${msg.replace(/^.*?: /, '')}.`, todo: 'Wait for a host to come back, or host the missing blocks yourself on the Models page.' }
  }
  if (msg.includes("exceeds the model's context")) {
    return { what: `The conversation no longer fits the model: ${msg}.`, todo: 'Start a new chat, or lower max tokens.' }
  }
  if (msg.includes('no usable chain')) {
    return { what: 'Every agent serving part of this model failed just now.', todo: 'Try again in a few seconds; failed agents are avoided for a short while only.' }
  }
  if (msg.includes('embedding and head') || msg.includes('no URL is known')) {
    return { what: `The model's embedding and output layer could not be fetched from the mesh (${msg}).`, todo: 'Check on the dashboard that its hosts are still online, then try again.' }
  }
  return { what: `Generation failed: ${msg}.`, todo: 'Try again; if it keeps failing, pick another model or check "Models in the mesh" on the dashboard.' }
}
