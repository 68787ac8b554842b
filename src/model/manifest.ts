// A model manifest names one exact model version: architecture, config and a digest of every
// tensor's bytes, hashed into an id, so two agents can tell they hold the same weights before
// exchanging hidden states. Tensors are hashed one at a time to keep memory flat.
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { LlamaConfig } from './config.ts'
import { typeName } from './ggml-types.ts'
import type { ModelFile, TensorRef } from './model-file.ts'
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

/** Where a manifest is published beside its model file: `<model URL>.manifest.json`. */
export const MANIFEST_SUFFIX = '.manifest.json'

type ManifestBody = Omit<ModelManifest, 'id'>

const idOf = (body: ManifestBody): string => bytesToHex(sha256(new TextEncoder().encode(canonicalJson(body))))

const shapeOf = (ref: TensorRef): Omit<ModelManifest['tensors'][number], 'sha256'> =>
  ({ name: ref.name, type: typeName(ref.type), dims: ref.dims })

async function digest (model: ModelFile, ref: TensorRef): Promise<string> {
  return bytesToHex(sha256(await model.source.read(ref.offset, ref.byteLength)))
}

export async function computeManifest (model: ModelFile, onProgress?: (done: number, total: number) => void): Promise<ModelManifest> {
  const refs = [...model.tensors.values()].sort((a, b) => a.offset - b.offset)
  const tensors: ModelManifest['tensors'] = []
  for (const [i, ref] of refs.entries()) {
    tensors.push({ ...shapeOf(ref), sha256: await digest(model, ref) })
    onProgress?.(i + 1, refs.length)
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : 1))
  const body: ManifestBody = { version: 1, architecture: model.config.architecture, config: model.config, tensors }
  return { ...body, id: idOf(body) }
}

/**
 * Accepts a manifest published elsewhere (beside the model's URL, or by a peer) for `model`
 * when its id is the hash of its body and it describes exactly the model's header: the same
 * architecture, config and tensors (names, types, shapes). The tensors' bytes are then checked
 * one by one as they are loaded (`verifyTensors`), so a host reads only the range it serves.
 */
export function matchManifest (candidate: unknown, model: ModelFile): ModelManifest {
  const m = candidate as ModelManifest
  if (m?.version !== 1 || typeof m.id !== 'string' || !Array.isArray(m.tensors)) throw new Error('not a version 1 model manifest')
  const { id, ...body } = m
  if (idOf(body) !== id) throw new Error('the manifest\'s id is not the hash of its contents')
  if (m.architecture !== model.config.architecture || canonicalJson(m.config) !== canonicalJson(model.config)) {
    throw new Error('the manifest describes a different architecture or config than the model file')
  }
  const mine = [...model.tensors.values()].map(shapeOf).sort((a, b) => (a.name < b.name ? -1 : 1))
  const theirs = m.tensors.map(t => ({ name: t?.name, type: t?.type, dims: t?.dims }))
  if (canonicalJson(mine) !== canonicalJson(theirs) || !m.tensors.every(t => typeof t.sha256 === 'string' && /^[0-9a-f]{64}$/.test(t.sha256))) {
    throw new Error('the manifest lists different tensors than the model file')
  }
  return m
}

/** Hashes the named tensors of `model` and refuses any whose bytes differ from the manifest. */
export async function verifyTensors (manifest: ModelManifest, model: ModelFile, names: string[], onProgress?: (done: number, total: number) => void): Promise<void> {
  const expected = new Map(manifest.tensors.map(t => [t.name, t.sha256]))
  for (const [i, name] of names.entries()) {
    const ref = model.tensors.get(name)
    if (ref == null || !expected.has(name)) throw new Error(`tensor ${name} is not in the model manifest`)
    if (await digest(model, ref) !== expected.get(name)) {
      throw new Error(`tensor ${name} of ${model.source.name} does not match model ${manifest.id.slice(0, 12)}…: the file is corrupted or a different version`)
    }
    onProgress?.(i + 1, names.length)
  }
}
