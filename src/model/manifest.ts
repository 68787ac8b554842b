// A model manifest names one exact model version: architecture, config and a digest of every
// tensor's bytes, hashed into an id, so two agents can tell they hold the same weights before
// exchanging hidden states. Tensors are hashed one at a time to keep memory flat.
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { LlamaConfig } from './config.ts'
import { typeName } from './ggml-types.ts'
import type { ModelFile } from './model-file.ts'
import { canonicalJson } from '../protocol/canonical.ts'

// The manifest hashes the same canonical JSON that signatures use.
export { canonicalJson }

export interface ModelManifest {
  version: 1
  architecture: string
  config: LlamaConfig
  tensors: Array<{ name: string, type: string, dims: number[], sha256: string }>
  /** sha256 of the canonical JSON of everything above. */
  id: string
}

export async function computeManifest (model: ModelFile, onProgress?: (done: number, total: number) => void): Promise<ModelManifest> {
  const refs = [...model.tensors.values()].sort((a, b) => a.offset - b.offset)
  const tensors: ModelManifest['tensors'] = []
  for (const [i, ref] of refs.entries()) {
    tensors.push({ name: ref.name, type: typeName(ref.type), dims: ref.dims, sha256: bytesToHex(sha256(await model.source.read(ref.offset, ref.byteLength))) })
    onProgress?.(i + 1, refs.length)
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : 1))
  const body = { version: 1 as const, architecture: model.config.architecture, config: model.config, tensors }
  return { ...body, id: bytesToHex(sha256(new TextEncoder().encode(canonicalJson(body)))) }
}
