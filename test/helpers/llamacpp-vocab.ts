// llama.cpp keeps real tokenizer vocabularies in its repository (models/ggml-vocab-*.gguf, no
// weights) with reference tokenizations made by Hugging Face's tokenizers (.inp texts, .out ids).
// node-llama-cpp, already a devDependency for the engine comparison, carries that repository as
// a git bundle: the tests read the files from it instead of from a network they do not have.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const BUNDLE = fileURLToPath(new URL('../../node_modules/node-llama-cpp/llama/gitRelease.bundle', import.meta.url))

export interface VocabCase { text: string, ids: number[] }

export interface LlamaCppVocabs {
  /** The vocabulary-only GGUF of `name` (e.g. "llama-bpe"). */
  gguf: (name: string) => Promise<Blob>
  /** The texts of `name` with the ids llama.cpp's test expects (no BOS). */
  cases: (name: string) => Promise<VocabCase[]>
  close: () => Promise<void>
}

export async function openLlamaCppVocabs (): Promise<LlamaCppVocabs> {
  const repo = await mkdtemp(join(tmpdir(), 'clawnet-llamacpp-vocab-'))
  const git = async (...args: string[]): Promise<Buffer> =>
    (await run('git', ['-C', repo, ...args], { encoding: 'buffer', maxBuffer: 256 * 2 ** 20 })).stdout
  await git('init', '-q', '--bare')
  const head = (await git('bundle', 'unbundle', BUNDLE)).toString().trim().split(/\s+/)[0]
  const file = async (path: string): Promise<Buffer> => await git('cat-file', 'blob', `${head}:${path}`)
  return {
    gguf: async name => new Blob([new Uint8Array(await file(`models/ggml-vocab-${name}.gguf`)).slice()]),
    cases: async name => {
      const texts = (await file(`models/ggml-vocab-${name}.gguf.inp`)).toString('utf8').split('\n__ggml_vocab_test__\n')
      const ids = (await file(`models/ggml-vocab-${name}.gguf.out`)).toString('utf8').split('\n')
      if (ids.length < texts.length) throw new Error(`${name}: ${texts.length} texts but ${ids.length} id lines`)
      return texts.map((text, i) => ({ text, ids: ids[i].trim() === '' ? [] : ids[i].trim().split(/\s+/).map(Number) }))
    },
    close: async () => { await rm(repo, { recursive: true, force: true }) }
  }
}
