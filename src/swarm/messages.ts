import { registerMessageType } from '../protocol/messages.ts'
import { TOPICS } from '../mesh/topics.ts'

export const SHARD_TOPIC = TOPICS.shards
/** Stream protocol for inference sessions (open, prefill/decode steps, close). */
export const INFERENCE_PROTOCOL = '/clawnet/inference/1.0.0'
/** Stream protocol on which a host pushes a session's hidden states on to the next hop's host. */
export const PUSH_PROTOCOL = '/clawnet/inference-push/1.0.0'
/** Stream protocol for weight bytes: peers that hold a range serve its tensors to others. */
export const WEIGHTS_PROTOCOL = '/clawnet/weights/1.0.0'
export const EVIDENCE_TOPIC = TOPICS.evidence

export interface ShardAnnounce {
  /** Content hash of the model manifest: two agents with the same hash hold the same weights. */
  model: string
  /** Display name of the model (e.g. its file name). */
  name: string
  nLayers: number
  /** Inclusive block range this agent serves. */
  start: number
  end: number
  /** Measured compute time per token per block, ms. */
  msPerTokenLayer: number
  /** Tokens of KV cache it can still take. */
  freeCacheTokens: number
  /** Open sessions / capacity, 0..1. */
  load: number
  /** Measured round-trip times to the peers it knows, ms. */
  rtts: Record<string, number>
  /** Where the weights can be fetched (URL of the GGUF), if public. */
  url?: string
  ttl: number
}

export interface SpotCheckEvidence {
  model: string
  start: number
  end: number
  /** The peer whose output disagreed with the checker's reference peer. */
  accused: string
  reference: string
  /** Largest absolute difference seen, and the tolerance it exceeded. */
  maxDiff: number
  tolerance: number
  /** sha256 (hex) of the input hidden state and of both outputs, so the claim can be re-run. */
  inputDigest: string
  accusedDigest: string
  referenceDigest: string
}

const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0
const int = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0
const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max

export function checkShardAnnounce (b: any): string | undefined {
  if (!str(b.model, 128)) return 'model'
  if (!str(b.name, 128)) return 'name'
  if (!int(b.nLayers) || b.nLayers < 1 || b.nLayers > 1024) return 'nLayers'
  if (!int(b.start) || !int(b.end) || b.end < b.start || b.end >= b.nLayers) return 'range'
  if (!num(b.msPerTokenLayer)) return 'msPerTokenLayer'
  if (!int(b.freeCacheTokens)) return 'freeCacheTokens'
  if (!num(b.load) || b.load > 1) return 'load'
  if (b.rtts == null || typeof b.rtts !== 'object' || Object.keys(b.rtts).length > 64 || !Object.values(b.rtts).every(num)) return 'rtts'
  if (b.url !== undefined && !str(b.url, 512)) return 'url'
  if (!int(b.ttl) || b.ttl < 5 || b.ttl > 3600) return 'ttl'
  return undefined
}

export function checkEvidence (b: any): string | undefined {
  for (const k of ['model', 'accused', 'reference', 'inputDigest', 'accusedDigest', 'referenceDigest']) if (!str(b[k], 128)) return k
  if (!int(b.start) || !int(b.end) || b.end < b.start) return 'range'
  if (!num(b.maxDiff) || !num(b.tolerance) || b.maxDiff <= b.tolerance) return 'maxDiff'
  return undefined
}

registerMessageType('shard.announce', checkShardAnnounce)
registerMessageType('shard.evidence', checkEvidence)
