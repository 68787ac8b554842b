import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay, MODELS_DIR } from '../helpers/relay.ts'
import { startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'

/**
 * Two headless hosts of stories260K, one from a file damaged in a way that keeps every value
 * finite (so it loads, runs, and just names another model): each tells its owner how its copy
 * differs from the one the other serves, down to the tensor.
 */
describe('copies of one model that differ', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let dir: string
  let good: PeerProcess
  let damaged: PeerProcess

  beforeAll(async () => {
    relay = await startRelay()
    dir = await mkdtemp(join(tmpdir(), 'clawnet-copies-'))
    const bytes = await readFile(join(MODELS_DIR, 'stories260K/stories260K.gguf'))
    // The lowest bit of one f32 weight of blk.2.ffn_gate.weight (it starts at byte 558592).
    bytes[592768] ^= 0x01
    // Same file name, so the same model name in the mesh.
    await writeFile(join(dir, 'stories260K.gguf'), bytes)
    good = await startPeerProcess(relay.url, 'good', ['--model', join(MODELS_DIR, 'stories260K/stories260K.gguf'), '--layers', '0-4'])
    damaged = await startPeerProcess(relay.url, 'damaged', ['--model', join(dir, 'stories260K.gguf'), '--layers', '0-4'])
  })

  afterAll(async () => {
    await good?.stop()
    await damaged?.stop()
    await relay?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('names the tensor that differs, on both hosts, in the API and in the log', async () => {
    const [goodId, damagedId] = await Promise.all([good, damaged].map(async p => (await p.get('/v1/swarm')).hosting.model))
    expect(goodId).not.toBe(damagedId)
    for (const [p, other] of [[damaged, goodId], [good, damagedId]] as const) {
      const found = await waitFor('the other copy to be compared', async () => (await p.get('/v1/swarm')).hosting.divergent[0], 30_000)
      expect(found).toEqual({ model: other, peers: 1, tensors: ['blk.2.ffn_gate.weight'], total: expect.any(Number), likely: 'damaged' })
      expect(found.total).toBeGreaterThan(40)
    }
    expect(damaged.output()).toMatch(/clawnet peer: this copy of stories260K\.gguf \([0-9a-f]{12}…\) differs from the one 1 other agent serves \([0-9a-f]{12}…\) in 1 of \d+ tensors: blk\.2\.ffn_gate\.weight\. So few differ that one of the copies is likely damaged: if it is this one, download or copy the file again/)
  })
})
