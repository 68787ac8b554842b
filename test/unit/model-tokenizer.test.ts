import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { openModel, makeTokenizer } from '../../src/model/open-model.ts'
import { ByteLevelBpeTokenizer } from '../../src/model/tokenizer-bpe.ts'
import { TokenType, type Vocabulary } from '../../src/model/tokenizer.ts'
import { encodeChat, renderChat } from '../../src/model/chat-template.ts'
import { readGgufHeader } from '../../src/model/gguf.ts'
import { vocabFromGguf } from '../../src/model/gguf-model.ts'
import { openBlobSource } from '../../src/model/source-blob.ts'
import { openLlamaCppVocabs, type LlamaCppVocabs } from '../helpers/llamacpp-vocab.ts'

const dir = '../shared/models/stories260K'
const reference = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8'))

describe('SentencePiece tokenizer', () => {
  for (const file of ['stories260K.bin', 'stories260K.gguf']) {
    it(`${file}: reference prompts, empty prompt, byte fallback round trip`, async () => {
      const { model, tokenizer } = await openModel(`${dir}/${file}`)
      for (const r of reference.results) expect(tokenizer.encode(r.prompt)).toEqual(r.prompt_tokens_with_bos)
      expect(tokenizer.encode('')).toEqual([1])
      const ids = tokenizer.encode('Zoë 🐉 said hi')
      // é and the dragon are not in the 512-token vocabulary: they must come out as byte tokens.
      expect(ids.filter(id => id >= 3 && id < 259).length).toBeGreaterThanOrEqual(6)
      expect(tokenizer.decode(ids)).toBe(' Zoë 🐉 said hi')
      expect(tokenizer.stopTokens.has(2)).toBe(true)
      await model.source.close?.()
    })
  }

  it('a streaming decoder holds split UTF-8 bytes until the character completes', async () => {
    const { model, tokenizer } = await openModel(`${dir}/stories260K.gguf`)
    const d = tokenizer.decoder()
    const parts = tokenizer.encode('🐉', { addBos: false }).map(id => d.push(id))
    expect(parts.slice(0, -1).join('')).toBe(' ')
    expect(parts.join('') + d.flush()).toBe(' 🐉')
    await model.source.close?.()
  })
})

// A tiny byte-level BPE vocabulary: bytes as GPT-2 printable characters, a few merges.
function tinyBpe (pre: string): Vocabulary {
  const single = ['H', 'e', 'l', 'o', 'Ġ', 'w', 'r', 'd', '1', '2', '3', '4', '!', 'Ċ', 'Ã', '©']
  const merges = ['l l', 'e ll', 'H ell', 'Hell o', 'Ġ w', 'o r', 'Ġw or', 'Ġwor l', 'Ġworl d', '1 2', '12 3']
  const tokens = [...single, ...merges.map(m => m.replace(' ', '')), '<|bos|>', '<|eot|>']
  const types = tokens.map(t => t.startsWith('<|') ? TokenType.CONTROL : TokenType.NORMAL)
  return { kind: 'bpe', tokens, types, merges, bos: tokens.indexOf('<|bos|>'), eos: tokens.indexOf('<|eot|>'), addBos: true, pre }
}

describe('GPT-2 byte-level BPE tokenizer', () => {
  it('merges by rank inside pre-tokenized words and round-trips bytes', () => {
    const v = tinyBpe('gpt2')
    const t = new ByteLevelBpeTokenizer(v)
    const ids = t.encode('Hello world!')
    expect(ids.map(id => v.tokens[id])).toEqual(['<|bos|>', 'Hello', 'Ġworld', '!'])
    expect(t.decode(ids)).toBe('Hello world!')
    expect(t.decode(t.encode('é\n', { addBos: false }))).toBe('é\n')
  })

  it('digit grouping follows the pre-tokenizer (llama3: up to 3, qwen2: 1)', () => {
    const llama3 = tinyBpe('llama3')
    expect(new ByteLevelBpeTokenizer(llama3).encode('1234', { addBos: false }).map(id => llama3.tokens[id])).toEqual(['123', '4'])
    const qwen = tinyBpe('qwen2')
    expect(new ByteLevelBpeTokenizer(qwen).encode('1234', { addBos: false }).map(id => qwen.tokens[id])).toEqual(['1', '2', '3', '4'])
  })

  it('special tokens in text map to their ids only when asked', () => {
    const v = tinyBpe('gpt2')
    const t = makeTokenizer(v)
    expect(t.encode('Hello<|eot|>', { addBos: false, parseSpecial: true }).map(id => v.tokens[id])).toEqual(['Hello', '<|eot|>'])
    // Without parseSpecial the markup is plain text, whose characters this tiny vocabulary lacks.
    expect(() => t.encode('Hello<|eot|>', { addBos: false })).toThrow(/not in the vocabulary/)
  })

  it('an unknown pre-tokenizer is an error naming it', () => {
    expect(() => new ByteLevelBpeTokenizer(tinyBpe('martian'))).toThrow(/martian/)
  })
})

describe('chat templates', () => {
  it('renders the model template with its BOS once and special markup as single ids', () => {
    const v = tinyBpe('gpt2')
    const t = makeTokenizer(v)
    const template = "{{ bos_token }}{% for m in messages %}{{ m.content }}<|eot|>{% endfor %}{% if add_generation_prompt %}Hello{% endif %}"
    expect(renderChat(template, [{ role: 'user', content: 'Hello world' }], t)).toBe('<|bos|>Hello world<|eot|>Hello')
    const ids = encodeChat(template, [{ role: 'user', content: 'Hello world' }], t)
    expect(ids.map(id => v.tokens[id])).toEqual(['<|bos|>', 'Hello', 'Ġworld', '<|eot|>', 'Hello'])
  })
})

describe('real vocabularies against llama.cpp\'s reference tokenizations', () => {
  let vocabs: LlamaCppVocabs
  beforeAll(async () => { vocabs = await openLlamaCppVocabs() }, 60_000)
  afterAll(async () => { await vocabs?.close() })

  // Llama 3, Qwen2 and GPT-2 byte-level BPE; Llama 2 and Phi-3 SentencePiece. Each text set has
  // 47 cases: whitespace runs, digits, accents, CJK, emoji, code, contractions.
  for (const name of ['llama-bpe', 'qwen2', 'gpt-2', 'llama-spm', 'phi-3']) {
    it(name, async () => {
      const vocab = vocabFromGguf(await readGgufHeader(openBlobSource(await vocabs.gguf(name))))!
      const tokenizer = makeTokenizer(vocab)
      const cases = await vocabs.cases(name)
      expect(cases.length).toBeGreaterThan(40)
      for (const { text, ids } of cases) {
        expect(tokenizer.encode(text, { addBos: false }), JSON.stringify(text)).toEqual(ids)
        if (vocab.kind === 'bpe') expect(tokenizer.decode(ids), JSON.stringify(text)).toBe(text)
      }
    })
  }
})
