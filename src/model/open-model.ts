// Opens a model by looking at its first bytes: GGUF by magic, otherwise a llama2.c checkpoint,
// whose tokenizer is a separate file found beside it (tok*.bin / tokenizer.bin) unless given.
import { listSiblings, openSource } from './source.ts'
import type { ByteSource } from './source-http.ts'
import { openGguf } from './gguf-model.ts'
import { NotLlama2c, openLlama2c, readLlama2cTokenizer } from './llama2c.ts'
import type { ModelFile } from './model-file.ts'
import type { Tokenizer, Vocabulary } from './tokenizer.ts'
import { SentencePieceTokenizer } from './tokenizer-spm.ts'
import { ByteLevelBpeTokenizer } from './tokenizer-bpe.ts'

export async function openModelSource (source: ByteSource): Promise<ModelFile> {
  const magic = source.size >= 4 ? new TextDecoder().decode(await source.read(0, 4)) : ''
  if (magic === 'GGUF') return await openGguf(source)
  try {
    return await openLlama2c(source)
  } catch (err: any) {
    // llama2.c files have no magic: an implausible header means "not a model" at all, not a bad checkpoint.
    if (err instanceof NotLlama2c) {
      const why = err.message.replace(`${source.name}: `, '').replace(/^not a llama2\.c checkpoint \((.*)\)$/, '$1')
      throw new Error(`${source.name} is not a model file: not GGUF (it does not start with 'GGUF') and not a llama2.c checkpoint (${why}); give a .gguf file, or a llama2.c .bin beside its tokenizer`)
    }
    throw err
  }
}

export async function openModel (location: string, opts: { tokenizer?: string } = {}): Promise<{ model: ModelFile, tokenizer: Tokenizer }> {
  const model = await openModelSource(await openSource(location))
  if (model.vocab != null && opts.tokenizer == null) return { model, tokenizer: makeTokenizer(model.vocab) }
  const candidates = opts.tokenizer != null ? [opts.tokenizer] : await tokenizerCandidates(location)
  for (const candidate of candidates) {
    let source: ByteSource
    try { source = await openSource(candidate) } catch { continue }
    try {
      return { model, tokenizer: makeTokenizer(await readLlama2cTokenizer(source, model.config.vocabSize)) }
    } finally {
      await source.close?.()
    }
  }
  throw new Error(`${model.source.name}: no tokenizer in the model; pass --tokenizer (looked for ${candidates.join(', ')})`)
}

async function tokenizerCandidates (location: string): Promise<string[]> {
  const dir = location.slice(0, location.lastIndexOf('/') + 1)
  const local = (await listSiblings(location)).filter(f => /^tok.*\.bin$/.test(f) && f !== 'tokenizer.bin').sort()
  return [...local, 'tokenizer.bin'].map(n => dir + n)
}

export function makeTokenizer (vocab: Vocabulary): Tokenizer {
  return vocab.kind === 'bpe' ? new ByteLevelBpeTokenizer(vocab) : new SentencePieceTokenizer(vocab)
}
