// What `clawnet peer` makes of bad input, decided by functions that run before (or without) a
// mesh: the command line, the model file, the pinned range against the model and the memory lent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseLayers, parsePeerArgs, UsageError } from '../../relay/commands/peer.ts'
import { openFileSource, openSource } from '../../src/model/source.ts'
import { openModelSource } from '../../src/model/open-model.ts'
import { memorySource } from '../../src/model/source-memory.ts'
import { openLocalModel } from '../../src/engine/local-model.ts'
import { loadRuntime } from '../../src/engine/ort.ts'
import { blocksThatFit, checkModel, checkRange, loadRange, openForSwarm } from '../../src/swarm/hosting.ts'
import { freePort } from '../helpers/peer-process.ts'
import { MODELS_DIR } from '../helpers/relay.ts'

const MODEL = join(MODELS_DIR, 'stories260K/stories260K.gguf')
const RELAY = 'http://127.0.0.1:8787'
const MiB = 2 ** 20

const usage = (argv: string[]): string => {
  try {
    parsePeerArgs(argv)
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError)
    return (err as Error).message
  }
  throw new Error(`accepted: ${argv.join(' ')}`)
}

describe('peer command line', () => {
  it('accepts a well-formed hosting peer and reads its values', () => {
    const v = parsePeerArgs(['--relay', RELAY, '--model', MODEL, '--layers', '1-3', '--memory-mb', '512', '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0, /ip4/0.0.0.0/tcp/4001'])
    expect(v.help).toBe(false)
    if (v.help) return
    expect(v.layers).toEqual([1, 3])
    expect(v.memoryMb).toBe(512)
    expect(v.api).toEqual({ host: '127.0.0.1', port: 0 })
    expect(v.listen).toEqual(['/ip4/127.0.0.1/tcp/0', '/ip4/0.0.0.0/tcp/4001'])
    expect(parsePeerArgs(['--relay', '/ip4/127.0.0.1/tcp/8787/ws/p2p/12D3KooWGmp3fM8NHRY1DqpreLyaRYehNEVWTrCJJWUotJVUnvDG']).help).toBe(false)
    expect(parsePeerArgs(['--help']).help).toBe(true)
  })

  it('--layers: A-B or one block, first before last', () => {
    expect(parseLayers('0-4')).toEqual([0, 4])
    expect(parseLayers(' 2 ')).toEqual([2, 2])
    for (const bad of ['abc', '1-', '-1-2', '1.5-2', '0-x']) expect(() => parseLayers(bad)).toThrow(/--layers must be A-B or A, block numbers counted from 0/)
    expect(() => parseLayers('3-1')).toThrow(/--layers 3-1: the first block comes after the last; did you mean 1-3\?/)
    expect(usage(['--relay', RELAY, '--model', MODEL, '--layers=-1-2'])).toMatch(/--layers must be A-B/)
    // Without '=', a value starting with '-' is taken for a flag; Node's parser says how to pass it.
    expect(usage(['--relay', RELAY, '--model', MODEL, '--layers', '-1-2'])).toMatch(/'--layers' argument is ambiguous/)
    expect(usage(['--relay', RELAY, '--layers', '0-1'])).toMatch(/--layers pins blocks of the model given with --model/)
  })

  it('--memory-mb, --api, --relay, --listen and unknown flags are refused with what is expected', () => {
    for (const mb of ['lots', '0', '-5', 'Infinity', '']) expect(usage(['--relay', RELAY, `--memory-mb=${mb}`])).toMatch(/--memory-mb must be a positive number of MiB/)
    for (const api of ['8080', '127.0.0.1:', '127.0.0.1:99999', ':80']) expect(usage(['--relay', RELAY, '--api', api])).toMatch(/--api must be host:port with a port from 0 to 65535/)
    for (const relay of ['garbage', '127.0.0.1:8787', '/ip4/127.0.0.1/tcp/1', 'ws://127.0.0.1:8787']) expect(usage(['--relay', relay])).toMatch(/--relay must be the relay's URL .* or its multiaddr ending in \/p2p\//)
    expect(usage([])).toMatch(/--relay is required/)
    expect(usage(['--relay', RELAY, '--listen', 'tcp:4001'])).toMatch(/--listen takes multiaddrs/)
    expect(usage(['--relay', RELAY, '--model', ''])).toMatch(/--model is empty/)
    expect(usage(['--relay', RELAY, '--bogus'])).toMatch(/Unknown option '--bogus'/)
    expect(usage(['--relay', RELAY, 'stray'])).toMatch(/Unexpected argument 'stray'/)
    expect(usage(['--relay', RELAY, '--threads', '0'])).toMatch(/--threads must be a whole number/)
    expect(usage(['--relay', RELAY, '--announce', 'soon'])).toMatch(/--announce must be a positive number of seconds/)
  })
})

describe('model files a peer is given', () => {
  let dir: string
  let bytes: Uint8Array
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clawnet-cli-input-'))
    bytes = new Uint8Array(await readFile(MODEL))
    await writeFile(join(dir, 'notes.txt'), 'hello, this is not a model\n'.repeat(4))
    await writeFile(join(dir, 'tiny.txt'), 'hi\n')
    await writeFile(join(dir, 'truncated.gguf'), bytes.slice(0, 1000))
  })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('a missing path or a directory is named as such', async () => {
    await expect(openFileSource(join(dir, 'nope.gguf'))).rejects.toThrow(/nope\.gguf: no such file$/)
    await expect(openFileSource(dir)).rejects.toThrow(/is a directory: give the model file itself/)
    await expect(checkModel(join(dir, 'nope.gguf'))).rejects.toThrow(/no such file/)
  })

  it('a file that is neither GGUF nor llama2.c is "not a model file", short or long', async () => {
    for (const name of ['notes.txt', 'tiny.txt']) {
      await expect(openModelSource(await openFileSource(join(dir, name)))).rejects.toThrow(new RegExp(`^${name.replace('.', '\\.')} is not a model file: not GGUF .* and not a llama2\\.c checkpoint`))
    }
    await expect(checkModel(join(dir, 'notes.txt'))).rejects.toThrow(/not a model file/)
  })

  it('a truncated GGUF says it is incomplete and to fetch it again', async () => {
    await expect(checkModel(join(dir, 'truncated.gguf'))).rejects.toThrow(/truncated\.gguf: header truncated at offset \d+ .*: the file is incomplete \(download or copy it again\)/)
  })

  it('an unreachable URL names the reason instead of "fetch failed"', async () => {
    const port = await freePort()
    await expect(openSource(`http://127.0.0.1:${port}/m.gguf`)).rejects.toThrow(new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/m\\.gguf \\(ECONNREFUSED\\): check the URL`))
    await expect(checkModel(`http://127.0.0.1:${port}/m.gguf`)).rejects.toThrow(/ECONNREFUSED/)
  })

  it('a refused file does not keep its handle open', async () => {
    // openLocalModel closes what it opened; a second open of the same bad file fails the same way.
    for (let i = 0; i < 2; i++) await expect(openLocalModel(join(dir, 'notes.txt'))).rejects.toThrow(/not a model file/)
  })
})

describe('a pinned range against the model and the memory lent', () => {
  it('blocks outside the model, and more blocks than the memory holds, are refused; what fits passes', async () => {
    const opened = await openLocalModel(MODEL)
    const m = { opened, runtime: await loadRuntime() }
    try {
      expect(opened.model.config.nLayers).toBe(5)
      expect(() => checkRange(m, 0, 99, Infinity)).toThrow(/blocks 0-99 are not in stories260K\.gguf, which has 5 blocks: pick a range within 0-4/)
      expect(() => checkRange(m, 5, 5, Infinity)).toThrow(/block 5 is not in/)
      expect(() => checkRange(m, -1, 2, Infinity)).toThrow(/pick a range within 0-4/)
      expect(() => checkRange(m, 3, 1, Infinity)).toThrow(/not in/)
      checkRange(m, 0, 4, Infinity)
      // The budget at which exactly two blocks fit, by the same estimate that placement uses.
      let two = 1024
      while (blocksThatFit(m, two) < 2) two += 1024
      checkRange(m, 0, 1, two)
      expect(() => checkRange(m, 0, 4, two)).toThrow(/blocks 0-4 of stories260K\.gguf need about [\d.]+ MiB .* more than the [\d.]+ MiB of lent memory set aside for blocks: lend more memory or host at most 2 blocks/)
      expect(() => checkRange(m, 0, 0, 1000)).toThrow(/block 0 of stories260K\.gguf needs about .*lend more memory \(not even one block fits\)/)
    } finally {
      await opened.model.source.close?.()
    }
  })

  it('checkModel applies the same checks to --layers and --memory-mb before the agent starts', async () => {
    await checkModel(MODEL, [0, 4], 2048 * MiB)
    await checkModel(MODEL, undefined, 2048 * MiB)
    await expect(checkModel(MODEL, [0, 99], 2048 * MiB)).rejects.toThrow(/blocks 0-99 are not in stories260K\.gguf/)
    await expect(checkModel(MODEL, [0, 4], 0.5 * MiB)).rejects.toThrow(/need about .* host at most \d block/)
    // Unpinned, placement chooses later; but a budget too small for any block is refused now.
    await expect(checkModel(MODEL, undefined, 0.001 * MiB)).rejects.toThrow(/not even one block fits/)
  })
})

describe('corrupted weights', () => {
  let dir: string
  let bytes: Uint8Array
  let gate: { offset: number, byteLength: number }
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clawnet-cli-corrupt-'))
    bytes = new Uint8Array(await readFile(MODEL))
    gate = (await openModelSource(memorySource(bytes))).tensors.get('blk.2.ffn_gate.weight')!
  })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  it('weights damaged into NaN are refused when the range loads', async () => {
    const damaged = bytes.slice()
    damaged.fill(0xff, gate.offset + 64, gate.offset + 128)
    await writeFile(join(dir, 'nan.gguf'), damaged)
    const m = await openForSwarm(join(dir, 'nan.gguf'))
    try {
      // Blocks before the damage still load; the damaged block gives NaN.
      const ok = await loadRange(m, 0, 1)
      await ok.hosted.range.release()
      await expect(loadRange(m, 0, 4)).rejects.toThrow(/blocks 0-4 of nan\.gguf give NaN or infinite values: its weights are corrupt/)
    } finally {
      await m.opened.model.source.close?.()
    }
  })

  it('finite damage cannot be told from a different model: it loads, under another model id', async () => {
    const damaged = bytes.slice()
    for (let i = gate.offset; i < gate.offset + 4096; i++) damaged[i] ^= 0xff
    await writeFile(join(dir, 'flipped.gguf'), damaged)
    const good = await openForSwarm(MODEL)
    const bad = await openForSwarm(join(dir, 'flipped.gguf'))
    try {
      // So clients of the genuine model never route through it.
      expect(bad.manifest).not.toBe(good.manifest)
      const { hosted } = await loadRange(bad, 0, 4)
      await hosted.range.release()
    } finally {
      await good.opened.model.source.close?.()
      await bad.opened.model.source.close?.()
    }
  })
})
