// The tokenizer interface shared by SentencePiece-style and GPT-2 byte-level BPE vocabularies.
export enum TokenType { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 }

export interface Vocabulary {
  /** SentencePiece-style (scores, byte fallback) or GPT-2 byte-level BPE (merges). */
  kind: 'spm' | 'bpe'
  tokens: string[]
  scores?: ArrayLike<number>
  types?: ArrayLike<number>
  merges?: string[]
  bos?: number
  eos?: number
  /** End-of-generation tokens besides eos (e.g. Llama 3's <|eot_id|>). */
  stop?: number[]
  addBos: boolean
  addSpacePrefix?: boolean
  /** GPT-2 BPE pre-tokenizer name from tokenizer.ggml.pre. */
  pre?: string
}

export interface Tokenizer {
  readonly vocab: Vocabulary
  readonly bos: number | undefined
  readonly eos: number | undefined
  /** Tokens that end generation. */
  readonly stopTokens: Set<number>
  encode: (text: string, opts?: { addBos?: boolean, parseSpecial?: boolean }) => number[]
  /** A stateful decoder: byte tokens are held back until they complete a UTF-8 character. */
  decoder: () => TokenDecoder
  decode: (ids: number[]) => string
}

export interface TokenDecoder { push: (id: number) => string, flush: () => string }

export function stopTokensOf (vocab: Vocabulary): Set<number> {
  const stops = new Set<number>(vocab.stop ?? [])
  if (vocab.eos != null) stops.add(vocab.eos)
  return stops
}

/** Splits text around control/user-defined tokens so that chat markup maps to its single ids. */
export function splitSpecial (text: string, vocab: Vocabulary): Array<string | number> {
  const specials: Array<[string, number]> = []
  vocab.tokens.forEach((t, id) => {
    const type = vocab.types?.[id]
    if ((type === TokenType.CONTROL || type === TokenType.USER_DEFINED) && t.length > 0) specials.push([t, id])
  })
  if (specials.length === 0) return [text]
  specials.sort((a, b) => b[0].length - a[0].length)
  const out: Array<string | number> = []
  let rest = text
  outer: while (rest.length > 0) {
    let best = -1
    let match: [string, number] | undefined
    for (const s of specials) {
      const at = rest.indexOf(s[0])
      if (at >= 0 && (best < 0 || at < best)) { best = at; match = s }
    }
    if (match == null) break outer
    if (best > 0) out.push(rest.slice(0, best))
    out.push(match[1])
    rest = rest.slice(best + match[0].length)
  }
  if (rest.length > 0) out.push(rest)
  return out
}
