import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, type Server } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { randomLlamaGguf } from '../../src/model/random-model.ts'
import { readLlama2cTokenizer } from '../../src/model/llama2c.ts'
import { memorySource } from '../../src/model/source-memory.ts'
import { openFileSource } from '../../src/model/source.ts'
import { openModelSource } from '../../src/model/open-model.ts'
import { computeManifest, matchManifest, verifyTensors, MANIFEST_SUFFIX, type ModelManifest } from '../../src/model/manifest.ts'
import { canonicalJson } from '../../src/protocol/canonical.ts'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { loadEnds, loadRange, openForSwarm } from '../../src/swarm/hosting.ts'
import type { ChunkStore } from '../../src/swarm/cached-source.ts'
import { serveFile } from '../../relay/lib/static.ts'
import { modelManifests } from '../../relay/lib/model-manifests.ts'
import { MODELS_DIR } from '../helpers/relay.ts'
import { llamaConfig } from '../helpers/llama-config.ts'
import { streamPair } from '@libp2p/utils'
import type { Connection } from '@libp2p/interface'
import { openPeerSource, serveWeights, type HeldModel } from '../../src/swarm/weights.ts'
import { sessionFrames } from '../../src/swarm/session-wire.ts'
import { compareCopies } from '../../src/swarm/divergence.ts'

const CONFIG = llamaConfig({ dim: 128, hiddenDim: 384, nLayers: 8, nHeads: 4, nKvHeads: 2, headDim: 32, vocabSize: 512, contextLength: 128, tiedEmbeddings: false })

const memoryStore = (): ChunkStore => {
  const m = new Map<string, Uint8Array>()
  return { get: async k => m.get(k), put: async (k, v) => { m.set(k, v) } }
}

/** Re-ids a manifest after a change, so only the header comparison can catch the change. */
const reId = (m: Omit<ModelManifest, 'id'> & { id?: string }): ModelManifest => {
  const { id: _, ...body } = m
  return { ...body, id: bytesToHex(sha256(new TextEncoder().encode(canonicalJson(body)))) }
}

describe('model manifests published beside the model', () => {
  let dir: string
  let bytes: Uint8Array
  let manifest: ModelManifest
  let server: Server
  let base: string
  /** Bytes of model files (not manifests) the server sent. */
  let served = 0

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clawnet-manifest-'))
    const vocab = await readLlama2cTokenizer(await openFileSource(join(MODELS_DIR, 'stories260K/tok512.bin')), 512)
    bytes = await randomLlamaGguf(CONFIG, vocab, { seed: 3, name: 'eight-blocks' })
    manifest = await computeManifest(await openModelSource(memorySource(bytes)))
    // The relay publishes a manifest for `good.gguf`; `bad.gguf` is a damaged copy of it whose
    // sidecar is the good one's (what a host sees when a mirror serves damaged bytes).
    const damaged = new Uint8Array(bytes)
    const model = await openModelSource(memorySource(damaged))
    damaged[model.tensors.get('blk.2.ffn_up.weight')!.offset + 10] ^= 0x40
    await writeFile(join(dir, 'good.gguf'), bytes)
    await writeFile(join(dir, 'bad.gguf'), damaged)
    await writeFile(join(dir, `bad.gguf${MANIFEST_SUFFIX}`), JSON.stringify(manifest))
    await writeFile(join(dir, 'plain.gguf'), bytes)
    const manifests = modelManifests(dir)
    server = createServer((req, res) => {
      void (async () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname
        if (path.endsWith('.gguf')) {
          const write = res.write.bind(res) as (...a: unknown[]) => boolean
          res.write = ((chunk: Uint8Array, ...rest: unknown[]) => { served += chunk.length; return write(chunk, ...rest) }) as typeof res.write
        }
        if (path.startsWith('/plain.gguf.')) return res.writeHead(404).end()
        if (await serveFile(req, res, dir, path)) return
        if (await manifests(req, res, path)) return
        res.writeHead(404).end()
      })()
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  })

  afterAll(async () => {
    await new Promise(resolve => server?.close(resolve))
    await rm(dir, { recursive: true, force: true })
  })

  it('accepts a matching manifest and refuses a forged id, a changed shape or another model', async () => {
    const model = await openModelSource(memorySource(bytes))
    expect(matchManifest(JSON.parse(JSON.stringify(manifest)), model).id).toBe(manifest.id)
    expect(() => matchManifest({ ...manifest, id: 'f'.repeat(64) }, model)).toThrow(/not the hash of its contents/)
    const reshaped = reId({ ...manifest, tensors: manifest.tensors.map(t => t.name === 'blk.0.attn_q.weight' ? { ...t, dims: [32, 128] } : t) })
    expect(() => matchManifest(reshaped, model)).toThrow(/different tensors/)
    expect(() => matchManifest(reId({ ...manifest, config: { ...CONFIG, ropeTheta: 500000 } }), model)).toThrow(/different architecture or config/)
    expect(() => matchManifest({ version: 2 }, model)).toThrow(/not a version 1/)
  })

  it('tells a copy with a few tensors changed (damage) from one with most changed (another version), and ignores other models and forged ids', async () => {
    const model = await openModelSource(memorySource(bytes))
    const changed = (names: (name: string) => boolean): ModelManifest => reId({ ...manifest, tensors: manifest.tensors.map(t => names(t.name) ? { ...t, sha256: '0'.repeat(64) } : t) })
    const damaged = changed(n => n === 'blk.2.ffn_up.weight')
    expect(compareCopies(manifest, model, damaged, damaged.id, 3)).toEqual({ model: damaged.id, peers: 3, tensors: ['blk.2.ffn_up.weight'], total: manifest.tensors.length, likely: 'damaged' })
    const tuned = changed(n => n.startsWith('blk.'))
    expect(compareCopies(manifest, model, tuned, tuned.id, 1)).toMatchObject({ likely: 'another version' })
    expect(compareCopies(manifest, model, tuned, damaged.id, 1)).toBeUndefined()
    expect(compareCopies(manifest, model, { ...damaged, id: 'f'.repeat(64) }, 'f'.repeat(64), 1)).toBeUndefined()
    expect(compareCopies(manifest, model, reId({ ...manifest, config: { ...CONFIG, ropeTheta: 500000 } }), 'x', 1)).toBeUndefined()
    expect(compareCopies(manifest, model, manifest, manifest.id, 1)).toBeUndefined()
  })

  it('names a tensor whose bytes differ from the manifest', async () => {
    const damaged = new Uint8Array(bytes)
    const model = await openModelSource(memorySource(damaged))
    damaged[model.tensors.get('blk.5.attn_v.weight')!.offset] ^= 1
    await expect(verifyTensors(manifest, model, ['blk.4.attn_v.weight'])).resolves.toBeUndefined()
    await expect(verifyTensors(manifest, model, ['blk.5.attn_v.weight'])).rejects.toThrow(/blk\.5\.attn_v\.weight .* does not match/)
  })

  it('a host of blocks 2-3 downloads about its share of the file, checked against the published manifest', async () => {
    served = 0
    const phases = new Set<string>()
    const m = await openForSwarm(`${base}good.gguf`, { onProgress: phase => phases.add(phase), cache: memoryStore() })
    expect(m.manifest).toBe(manifest.id)
    const { hosted } = await loadRange(m, 2, 3, phase => phases.add(phase))
    expect([hosted.range.first, hosted.range.last]).toEqual([2, 3])
    expect(phases.has('manifest')).toBe(false)
    expect(phases.has('verify')).toBe(true)
    // Its two blocks, plus the header (read in one piece of up to 1 MiB): far from the whole file.
    const model = await openModelSource(memorySource(bytes))
    const rangeBytes = [...model.tensors.values()].filter(t => /^blk\.[23]\./.test(t.name)).reduce((n, t) => n + t.byteLength, 0)
    expect(served).toBeGreaterThanOrEqual(rangeBytes)
    expect(served).toBeLessThanOrEqual(rangeBytes + (1 << 20) + 4096)
    expect(served / bytes.length).toBeLessThan(0.45)
  })

  it('refuses damaged bytes of the range it loads, and only checks what it loads', async () => {
    const m = await openForSwarm(`${base}bad.gguf`, { cache: memoryStore() })
    expect(m.manifest).toBe(manifest.id)
    await expect(loadRange(m, 2, 3)).rejects.toThrow(/blk\.2\.ffn_up\.weight of bad\.gguf does not match model/)
    const { hosted } = await loadRange(m, 4, 5)
    expect(hosted.range.first).toBe(4)
    await expect(loadEnds(m)).resolves.toBeDefined()
  })

  it('loads from a peer: checks the manifest the peer offers, and refuses one for another version', async () => {
    const fromPeer = async (held: HeldModel, wanted: string) => {
      const [outbound, inbound] = await streamPair()
      void serveWeights(inbound, model => model === wanted ? held : undefined)
      return await openPeerSource({ newStream: async () => outbound, remotePeer: { toString: () => 'peer' } } as unknown as Connection, wanted)
    }
    const held = { source: memorySource(bytes, 'good.gguf'), manifest }
    const m = await openForSwarm(await fromPeer(held, manifest.id), { trustedManifest: manifest.id, cache: memoryStore() })
    expect(m.toVerify?.id).toBe(manifest.id)
    await expect(loadEnds(m)).resolves.toBeDefined()
    // A peer holding other weights under the id we asked for is caught by the manifest it sends.
    const other = await randomLlamaGguf(CONFIG, (await openModelSource(memorySource(bytes))).vocab!, { seed: 4, name: 'eight-blocks' })
    const otherManifest = await computeManifest(await openModelSource(memorySource(other)))
    await expect(openForSwarm(await fromPeer({ source: memorySource(other), manifest: otherManifest }, manifest.id), { trustedManifest: manifest.id, cache: memoryStore() }))
      .rejects.toThrow(/different version/)
  })

  it('answers a weights request that is not an object with an error, then closes the stream', async () => {
    const [outbound, inbound] = await streamPair()
    const served = serveWeights(inbound, () => ({ source: memorySource(bytes, 'good.gguf'), manifest }))
    const frames = sessionFrames(outbound)
    await frames.write(null)
    expect(await frames.readJson(AbortSignal.timeout(2000))).toMatchObject({ ok: false, error: expect.stringMatching(/expected a JSON object/) })
    await expect(served).resolves.toBeUndefined()
  })

  it('without a published manifest, hashes the whole file to name it', async () => {
    served = 0
    const phases = new Set<string>()
    const m = await openForSwarm(`${base}plain.gguf`, { onProgress: phase => phases.add(phase), cache: memoryStore() })
    expect(m.manifest).toBe(manifest.id)
    expect(phases.has('manifest')).toBe(true)
    expect(served).toBeGreaterThanOrEqual(bytes.length * 0.95)
  })
})
