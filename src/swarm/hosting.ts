import { BlockRange, Embedding, Head } from '../engine/stages.ts'
import { loadRuntime } from '../engine/ort.ts'
import { estimateMemory } from '../engine/memory.ts'
import { openLocalModel, type OpenedModel } from '../engine/local-model.ts'
import { computeManifest } from '../model/manifest.ts'
import type { Runtime } from '../engine/runtime.ts'
import type { ByteSource } from '../model/source-http.ts'
import { openSource } from '../model/source.ts'
import { cachedSource, type ChunkStore } from './cached-source.ts'
import { chunkStore } from './weight-cache.ts'

const isByteSource = (x: unknown): x is ByteSource => typeof (x as ByteSource)?.read === 'function'
import type { HostedRange } from './server.ts'
import type { LocalEnds } from './client.ts'

export type ModelLocation = string | Blob | ByteSource

export interface LoadedModel { opened: OpenedModel, manifest: string, location: ModelLocation, runtime: Runtime }

export type Progress = (phase: string, done: number, total: number) => void

/**
 * Opens a model (header, tokenizer) and names it by its manifest hash. `trustedManifest` skips
 * hashing every tensor: a client taking only the embedding and head from a host it routes
 * through anyway need not download the whole model to name it.
 */
export async function openForSwarm (location: ModelLocation, onProgress?: Progress, trustedManifest?: string, cache?: ChunkStore): Promise<LoadedModel> {
  // Remote bytes (a URL or a peer) are cached; local files and Blobs are read where they are.
  const remote = typeof location === 'string' && /^https?:\/\//.test(location)
    ? cachedSource(await openSource(location), location, cache ?? chunkStore())
    : isByteSource(location) && trustedManifest != null ? cachedSource(location, `peer:${trustedManifest}`, cache ?? chunkStore()) : undefined
  const opened = await openLocalModel(remote ?? location, undefined, loaded => onProgress?.('header', loaded, 0))
  const manifest = trustedManifest ?? (await computeManifest(opened.model, (done, total) => onProgress?.('manifest', done, total))).id
  return { opened, manifest, location, runtime: await loadRuntime() }
}

/** How many blocks fit in a memory budget, from the model's own per-block estimate. */
export function blocksThatFit (m: LoadedModel, budgetBytes: number, contextTokens = 2048): number {
  const c = m.opened.model.config
  const perBlock = estimateMemory(m.opened.model, [[0, 0]], Math.min(contextTokens, c.contextLength))
  const block = perBlock.weightBytes - (estimateMemory(m.opened.model, [], 0).weightBytes) + perBlock.kvCacheBytes
  return Math.max(1, Math.min(c.nLayers, Math.floor(budgetBytes / Math.max(block, 1))))
}

/** Loads blocks first..last and measures their speed with a few one-token steps. */
export async function loadRange (m: LoadedModel, first: number, last: number, onProgress?: Progress): Promise<{ hosted: HostedRange, msPerTokenLayer: number }> {
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
    url: typeof m.location === 'string' && /^https?:/.test(m.location) ? m.location : undefined,
    // onnxruntime-web's WebGPU attention was wrong for >= 32 query tokens per call.
    maxChunk: m.runtime.backend === 'webgpu' ? 16 : 256
  }
  return { hosted, msPerTokenLayer: times[2] / (last - first + 1) }
}

/** The caller's stages: embedding and head, loaded without any block. */
export async function loadEnds (m: LoadedModel): Promise<LocalEnds> {
  return { config: m.opened.model.config, embedding: await Embedding.load(m.opened.model), head: await Head.load(m.opened.model, m.runtime) }
}
