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

/** How many blocks fit in a memory budget, from the model's own per-block estimate. */
export function blocksThatFit (m: LoadedModel, budgetBytes: number, contextTokens = 2048): number {
  const c = m.opened.model.config
  // As this agent's runtime will hold them: packed int8/int4 on Node's CPU, float16 on a GPU with shader-f16.
  const encoding = { packedMatMul: m.runtime.packedMatMul, halfWeights: m.runtime.halfWeights }
  const perBlock = estimateMemory(m.opened.model, [[0, 0]], Math.min(contextTokens, c.contextLength), encoding)
  const block = perBlock.weightBytes - (estimateMemory(m.opened.model, [], 0, encoding).weightBytes) + perBlock.kvCacheBytes
  return Math.max(1, Math.min(c.nLayers, Math.floor(budgetBytes / Math.max(block, 1))))
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
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    await range.forward(x, 1, scratch)
    times.push(performance.now() - t0)
  }
  scratch.dispose()
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
