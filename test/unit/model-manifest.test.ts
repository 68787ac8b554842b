import { describe, expect, it } from 'vitest'
import { readFile } from 'node:fs/promises'
import { memorySource } from '../../src/model/source-memory.ts'
import { openModelSource } from '../../src/model/open-model.ts'
import { canonicalJson, computeManifest } from '../../src/model/manifest.ts'

const dir = '../shared/models/stories260K'

describe('model manifest', () => {
  it('names the same weights the same whatever the file, and different weights differently', async () => {
    const gguf = await readFile(`${dir}/stories260K.gguf`)
    const a = await computeManifest(await openModelSource(memorySource(new Uint8Array(gguf), 'a.gguf')))
    const b = await computeManifest(await openModelSource(memorySource(new Uint8Array(gguf), 'b.gguf')))
    expect(a.id).toMatch(/^[0-9a-f]{64}$/)
    expect(b.id).toBe(a.id)
    const changed = new Uint8Array(gguf)
    const model = await openModelSource(memorySource(changed))
    changed[model.tensors.get('blk.3.ffn_up.weight')!.offset + 100] ^= 1
    const c = await computeManifest(await openModelSource(memorySource(changed)))
    expect(c.id).not.toBe(a.id)
    expect(c.tensors.filter((t, i) => t.sha256 !== a.tensors[i].sha256).map(t => t.name)).toEqual(['blk.3.ffn_up.weight'])
  })

  it('tied and untied files are different versions', async () => {
    const tied = await computeManifest(await openModelSource(memorySource(new Uint8Array(await readFile(`${dir}/stories260K-tied.gguf`)))))
    const untied = await computeManifest(await openModelSource(memorySource(new Uint8Array(await readFile(`${dir}/stories260K.gguf`)))))
    expect(tied.id).not.toBe(untied.id)
    expect(tied.config.tiedEmbeddings).toBe(true)
  })

  it('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[2,{"e":0,"f":1}]},"b":1}')
  })
})
