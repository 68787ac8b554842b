import { BlockRange, Embedding, Head } from '../engine/stages.ts'
import { loadRuntime } from '../engine/ort.ts'
import { estimateMemory } from '../engine/memory.ts'
import { openLocalModel, type OpenedModel } from '../engine/local-model.ts'
import { computeManifest, matchManifest, MANIFEST_SUFFIX, verifyTensors, type ModelManifest } from '../model/manifest.ts'
import type { Runtime } from '../engine/runtime.ts'
import type { ByteSource } from '../model/source-http.ts'
import { openSource } from '../model/source.ts'
import { tensorNames } from '../model/config.ts'
import { cachedSource, type ChunkStore } from './cached-source.ts'
import { chunkStore } from './weight-cache.ts'
import type { PeerSource } from './weights.ts'

const isByteSource = (x: unknown): x is ByteSource => typeof (x as ByteSource)?.read === 'function'
import type { HostedRange } from './server.ts'
import type { LocalEnds } from './client.ts'

export type ModelLocation = string | Blob | ByteSource

export interface LoadedModel {
  opened: OpenedModel
  /** The model's id: its manifest's hash. */
  manifest: string
  location: ModelLocation
  runtime: Runtime
  /** The whole manifest when known, passed on to peers that load the model from this agent. */
  full?: ModelManifest
  /**
   * Set when the manifest came from elsewhere (beside the URL, or from a peer): every tensor is
   * checked against it as it is loaded. Unset when this agent hashed the whole file itself.
   */
  toVerify?: ModelManifest
}

export type Progress = (phase: string, done: number, total: number) => void

const isHttp = (x: ModelLocation): x is string => typeof x === 'string' && /^https?:\/\//.test(x)

/** The manifest published for a remote model (beside its URL, or by the peer serving it), unchecked. */
async function offeredManifest (location: ModelLocation): Promise<unknown> {
  try {
    if (isHttp(location)) {
      const url = new URL(location)
      url.pathname += MANIFEST_SUFFIX
      const res = await fetch(url)
      return res.ok ? await res.json() : undefined
    }
    if (isByteSource(location) && 'manifest' in location) return await (location as PeerSource).manifest()
  } catch {}
  return undefined
}

/**
 * Opens a model (header, tokenizer) and names it by its manifest hash. A remote model's
 * published manifest is checked against the header and then tensor by tensor as the agent loads
 * them, so a host downloads only its range; without one, the whole file is hashed. A client
 * taking only the embedding and head from a host it routes through anyway may name the model by
 * `trustedManifest` when the host offers no manifest.
 */
export interface OpenOptions {
  onProgress?: Progress
  trustedManifest?: string
  cache?: ChunkStore
  /** CPU threads each engine may use (Node); default: ONNX Runtime's choice, every core. */
  threads?: number
}

export async function openForSwarm (location: ModelLocation, { onProgress, trustedManifest, cache, threads }: OpenOptions = {}): Promise<LoadedModel> {
  // Remote bytes (a URL or a peer) are cached; local files and Blobs are read where they are.
  const remote = isHttp(location)
    ? cachedSource(await openSource(location), location, cache ?? chunkStore())
    : isByteSource(location) && trustedManifest != null ? cachedSource(location, `peer:${trustedManifest}`, cache ?? chunkStore()) : undefined
  const opened = await openLocalModel(remote ?? location, undefined, loaded => onProgress?.('header', loaded, 0))
  let toVerify: ModelManifest | undefined
  const offered = remote != null ? await offeredManifest(location) : undefined
  if (offered != null) {
    try {
      toVerify = matchManifest(offered, opened.model)
    } catch {
      // A stale or foreign manifest: the file itself decides, hashed in full below.
    }
  }
  const full = toVerify ?? (trustedManifest == null ? await computeManifest(opened.model, (done, total) => onProgress?.('manifest', done, total)) : undefined)
  if (trustedManifest != null && full != null && full.id !== trustedManifest) {
    throw new Error(`the model offered is a different version (${full.id.slice(0, 12)}…, wanted ${trustedManifest.slice(0, 12)}…)`)
  }
  return { opened, manifest: full?.id ?? trustedManifest!, location, runtime: await loadRuntime({ threads }), full, toVerify }
}

/** Checks the tensors about to be loaded against a manifest that came from elsewhere. */
async function verifyLoaded (m: LoadedModel, names: string[], onProgress?: Progress): Promise<void> {
  if (m.toVerify != null) await verifyTensors(m.toVerify, m.opened.model, names, (done, total) => onProgress?.('verify', done, total))
}

/** What a block range reads: its blocks, and the rope frequency factors every block shares. */
const blockTensors = (m: LoadedModel, first: number, last: number): string[] =>
  [...m.opened.model.tensors.keys()].filter(name => {
    if (name === tensorNames.ropeFreqs) return true
    const block = /^blk\.(\d+)\./.exec(name)
    return block != null && Number(block[1]) >= first && Number(block[1]) <= last
  })

/** Bytes blocks first..last take once loaded (weights and a KV cache of `contextTokens`), without the ends. */
function rangeBytes (m: Pick<LoadedModel, 'opened' | 'runtime'>, first: number, last: number, contextTokens = 2048): number {
  // As this agent's runtime will hold them: packed int8/int4 on Node's CPU, float16 on a GPU with shader-f16.
  const encoding = { packedMatMul: m.runtime.packedMatMul, halfWeights: m.runtime.halfWeights }
  const model = m.opened.model
  const est = estimateMemory(model, [[first, last]], Math.min(contextTokens, model.config.contextLength), encoding)
  return est.weightBytes - estimateMemory(model, [], 0, encoding).weightBytes + est.kvCacheBytes
}

/** Share of the memory lent to hosting that is kept for the KV caches of client sessions, unless set otherwise. */
export const CACHE_SHARE = 0.25

/** How many blocks fit in a memory budget, from the model's own per-block estimate. */
export function blocksThatFit (m: Pick<LoadedModel, 'opened' | 'runtime'>, budgetBytes: number, contextTokens = 2048): number {
  const c = m.opened.model.config
  return Math.max(1, Math.min(c.nLayers, Math.floor(budgetBytes / Math.max(rangeBytes(m, 0, 0, contextTokens), 1))))
}

const mib = (bytes: number): string => `${bytes >= 10 * 2 ** 20 ? Math.round(bytes / 2 ** 20) : Number((bytes / 2 ** 20).toPrecision(2))} MiB`

/**
 * Refuses a range this agent cannot host: blocks the model lacks, or more than the memory it
 * lends (`budgetBytes`, for weights and KV caches) holds, since hosting past it would take
 * memory the owner did not lend.
 */
export function checkRange (m: Pick<LoadedModel, 'opened' | 'runtime'>, first: number, last: number, budgetBytes: number): void {
  const { name } = m.opened.summary
  const n = m.opened.model.config.nLayers
  const blocks = first === last ? `block ${first}` : `blocks ${first}-${last}`
  if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last < first || last >= n) {
    throw new Error(`${blocks} ${first === last ? 'is' : 'are'} not in ${name}, which has ${n} blocks: pick a range within 0-${n - 1}`)
  }
  const need = rangeBytes(m, first, last)
  if (need > budgetBytes) {
    const fit = Math.floor(budgetBytes / Math.max(rangeBytes(m, first, first), 1))
    throw new Error(`${blocks} of ${name} need${first === last ? 's' : ''} about ${mib(need)} (weights and KV cache), more than the ${mib(budgetBytes)} of lent memory set aside for blocks: ` +
      (fit > 0 ? `lend more memory or host at most ${fit} block${fit === 1 ? '' : 's'}` : 'lend more memory (not even one block fits)'))
  }
}

/**
 * Opens a local model's header and tokenizer (or asks a URL for its size) and checks a pinned
 * range against its blocks and the memory lent, so that a bad file or range is refused before
 * the agent joins the mesh and announces itself; hosting opens the model again and checks again.
 */
export async function checkModel (location: string, layers?: [number, number], memoryBudgetBytes = Infinity): Promise<void> {
  if (isHttp(location)) {
    await (await openSource(location)).close?.()
    return
  }
  const opened = await openLocalModel(location)
  try {
    // Unpinned, placement picks the range later; at least one block must fit all the same.
    const [first, last] = layers ?? [0, 0]
    checkRange({ opened, runtime: await loadRuntime() }, first, last, memoryBudgetBytes * (1 - CACHE_SHARE))
  } finally {
    await opened.model.source.close?.()
  }
}

/** Loads blocks first..last and measures their speed with a few one-token steps. */
export async function loadRange (m: LoadedModel, first: number, last: number, onProgress?: Progress): Promise<{ hosted: HostedRange, msPerTokenLayer: number }> {
  await verifyLoaded(m, blockTensors(m, first, last), onProgress)
  onProgress?.('blocks', 0, last - first + 1)
  const range = await BlockRange.load(m.opened.model, first, last, m.runtime)
  onProgress?.('blocks', last - first + 1, last - first + 1)
  const c = m.opened.model.config
  const scratch = range.newCache()
  const times: number[] = []
  const x = new Float32Array(c.dim).fill(0.01)
  let y: Float32Array = x
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    y = await range.forward(x, 1, scratch)
    times.push(performance.now() - t0)
  }
  scratch.dispose()
  // A file has no checksum: weights damaged into NaN or infinity are the one corruption a host can see for itself.
  if (!y.every(Number.isFinite)) {
    await range.release()
    throw new Error(`blocks ${first}-${last} of ${m.opened.summary.name} give NaN or infinite values: its weights are corrupt (download or copy the file again)`)
  }
  times.sort((a, b) => a - b)
  const hosted: HostedRange = {
    model: m.manifest,
    name: m.opened.summary.name,
    config: c,
    range,
    url: typeof m.location === 'string' && /^https?:/.test(m.location) ? m.location : undefined
  }
  return { hosted, msPerTokenLayer: times[2] / (last - first + 1) }
}

/** The caller's stages: embedding and head, loaded without any block. */
export async function loadEnds (m: LoadedModel): Promise<LocalEnds> {
  await verifyLoaded(m, [...m.opened.model.tensors.keys()].filter(name => !name.startsWith('blk.')))
  return { config: m.opened.model.config, embedding: await Embedding.load(m.opened.model), head: await Head.load(m.opened.model, m.runtime) }
}
