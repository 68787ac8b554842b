// A model file damaged in a way that keeps its values finite loads and runs; its manifest (the
// hash of every tensor) just names another model. Alone, a host cannot tell damage from a
// different version. The mesh can: when others serve a model of the same name and layout under
// another id, the tensors that differ say which it is, and where.
import { matchManifest, type ModelManifest } from '../model/manifest.ts'
import type { ModelFile } from '../model/model-file.ts'

export interface Divergence {
  /** The other copy's model id, and how many agents serve it. */
  model: string
  peers: number
  /** Tensors whose bytes differ from ours, of `total`. */
  tensors: string[]
  total: number
  /** A few tensors differ: a damaged file (ours or theirs); most of them: another version (a fine-tune, a requantisation). */
  likely: 'damaged' | 'another version'
}

/** Up to this share of differing tensors reads as damage rather than another version. */
const DAMAGE_SHARE = 0.1

/**
 * How our copy (`ours`, the manifest of `file`) differs from the manifest a peer offered for
 * model `id`; undefined when the offer is not that model's manifest or describes another model
 * altogether (a different architecture, config or set of tensors).
 */
export function compareCopies (ours: ModelManifest, file: ModelFile, offered: unknown, id: string, peers: number): Divergence | undefined {
  let theirs: ModelManifest
  try {
    theirs = matchManifest(offered, file)
  } catch {
    return undefined
  }
  if (theirs.id !== id || theirs.id === ours.id) return undefined
  const mine = new Map(ours.tensors.map(t => [t.name, t.sha256]))
  const tensors = theirs.tensors.filter(t => mine.get(t.name) !== t.sha256).map(t => t.name)
  return { model: id, peers, tensors, total: ours.tensors.length, likely: tensors.length <= Math.max(1, DAMAGE_SHARE * ours.tensors.length) ? 'damaged' : 'another version' }
}

/** What the owner of a host is told, in its log and on its dashboard. */
export function describeDivergence (name: string, ours: string, d: Divergence): string {
  const shown = d.tensors.slice(0, 4).join(', ') + (d.tensors.length > 4 ? `, … (${d.tensors.length - 4} more)` : '')
  const serve = `${d.peers} other agent${d.peers === 1 ? '' : 's'} serve${d.peers === 1 ? 's' : ''}`
  return `this copy of ${name} (${ours.slice(0, 12)}…) differs from the one ${serve} (${d.model.slice(0, 12)}…) in ${d.tensors.length} of ${d.total} tensors: ${shown}. ` +
    (d.likely === 'damaged'
      ? 'So few differ that one of the copies is likely damaged: if it is this one, download or copy the file again. Until then clients of the other copy do not route through this agent.'
      : 'Most differ, so it is likely another version of the model: both are served, each to the clients that ask for it.')
}
