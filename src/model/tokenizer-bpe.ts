// GPT-2 byte-level BPE (Llama 3, Qwen2, SmolLM): a regex pre-tokenizer splits the text, each
// piece's UTF-8 bytes are mapped to printable characters, and ranked merges join them.
import { splitSpecial, stopTokensOf, TokenType, type TokenDecoder, type Tokenizer, type Vocabulary } from './tokenizer.ts'

const CONTRACTIONS = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]"
// The pre-tokenizer patterns llama.cpp uses for each tokenizer.ggml.pre value.
const PATTERNS: Record<string, string> = {
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  llama3: `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  qwen2: `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  smollm: "\\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
}
const PRE_ALIASES: Record<string, string> = { 'llama-bpe': 'llama3', 'llama-v3': 'llama3', 'gpt-2': 'gpt2', default: 'gpt2' }
/**
 * Llama 3's tokenizer emits a pre-tokenized word that is itself in the vocabulary as that one
 * token, before any merge ("ignore_merges" in its tokenizer.json and in llama.cpp): ranked
 * merges alone would split " Việt" although it has a token of its own.
 */
const IGNORE_MERGES = new Set(['llama3'])

/** GPT-2's reversible byte -> printable character table. */
function byteToUnicode (): string[] {
  const table: string[] = new Array(256)
  let extra = 0
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++)
  }
  return table
}

const BYTE_CHARS = byteToUnicode()
const CHAR_BYTES = new Map(BYTE_CHARS.map((c, b) => [c, b]))

export class ByteLevelBpeTokenizer implements Tokenizer {
  readonly stopTokens: Set<number>
  private readonly ids = new Map<string, number>()
  private readonly ranks = new Map<string, number>()
  private readonly pattern: RegExp
  private readonly ignoreMerges: boolean
  private readonly cache = new Map<string, number[]>()

  constructor (readonly vocab: Vocabulary) {
    vocab.tokens.forEach((t, id) => { if (!this.ids.has(t)) this.ids.set(t, id) })
    ;(vocab.merges ?? []).forEach((m, rank) => this.ranks.set(m, rank))
    const pre = vocab.pre ?? 'gpt2'
    const name = PATTERNS[pre] != null ? pre : PRE_ALIASES[pre]
    if (name == null) throw new Error(`tokenizer: unknown BPE pre-tokenizer '${pre}' (known: ${[...Object.keys(PATTERNS), ...Object.keys(PRE_ALIASES)].join(', ')})`)
    this.pattern = new RegExp(PATTERNS[name], 'gu')
    this.ignoreMerges = IGNORE_MERGES.has(name)
    this.stopTokens = stopTokensOf(vocab)
  }

  get bos (): number | undefined { return this.vocab.bos }
  get eos (): number | undefined { return this.vocab.eos }

  encode (text: string, opts: { addBos?: boolean, parseSpecial?: boolean } = {}): number[] {
    const out: number[] = []
    if ((opts.addBos ?? this.vocab.addBos) && this.vocab.bos != null) out.push(this.vocab.bos)
    for (const part of opts.parseSpecial === true ? splitSpecial(text, this.vocab) : [text]) {
      if (typeof part === 'number') { out.push(part); continue }
      for (const m of part.matchAll(this.pattern)) out.push(...this.encodeWord(m[0]))
    }
    return out
  }

  private encodeWord (word: string): number[] {
    const cached = this.cache.get(word)
    if (cached != null) return cached
    let parts = Array.from(new TextEncoder().encode(word), b => BYTE_CHARS[b])
    const whole = this.ignoreMerges ? this.ids.get(parts.join('')) : undefined
    if (whole != null) return [whole]
    for (;;) {
      let best = Infinity
      let at = -1
      for (let i = 0; i + 1 < parts.length; i++) {
        const rank = this.ranks.get(`${parts[i]} ${parts[i + 1]}`)
        if (rank != null && rank < best) { best = rank; at = i }
      }
      if (at < 0) break
      parts = [...parts.slice(0, at), parts[at] + parts[at + 1], ...parts.slice(at + 2)]
    }
    const ids = parts.map(p => {
      const id = this.ids.get(p)
      if (id == null) throw new Error(`tokenizer: BPE piece ${JSON.stringify(p)} is not in the vocabulary`)
      return id
    })
    if (this.cache.size < 50_000) this.cache.set(word, ids)
    return ids
  }

  decoder (): TokenDecoder {
    const utf8 = new TextDecoder('utf-8')
    return {
      push: (id: number) => {
        const type = this.vocab.types?.[id]
        if (type === TokenType.CONTROL) return ''
        const token = this.vocab.tokens[id] ?? ''
        if (type === TokenType.USER_DEFINED) return utf8.decode(new TextEncoder().encode(token), { stream: true })
        const bytes = Uint8Array.from(Array.from(token), c => CHAR_BYTES.get(c) ?? 0x3f)
        return utf8.decode(bytes, { stream: true })
      },
      flush: () => utf8.decode()
    }
  }

  decode (ids: number[]): string {
    const d = this.decoder()
    return ids.map(id => d.push(id)).join('') + d.flush()
  }
}
