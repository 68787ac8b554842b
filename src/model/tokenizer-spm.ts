// SentencePiece-style BPE (Llama 2, Mistral, TinyLlama, llama2.c): spaces become '▁', one '▁' is
// prepended, characters merge pairwise by highest vocabulary score, and anything left outside the
// vocabulary falls back to <0xXX> byte tokens.
import { splitSpecial, stopTokensOf, TokenType, type TokenDecoder, type Tokenizer, type Vocabulary } from './tokenizer.ts'

const SPACE = '\u2581'

export class SentencePieceTokenizer implements Tokenizer {
  readonly stopTokens: Set<number>
  private readonly ids = new Map<string, number>()
  private readonly byteIds = new Map<number, number>()
  private readonly byteOf = new Map<number, number>()

  constructor (readonly vocab: Vocabulary) {
    vocab.tokens.forEach((t, id) => {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t)
      if (m != null && (vocab.types == null || vocab.types[id] === TokenType.BYTE)) {
        this.byteIds.set(parseInt(m[1], 16), id)
        this.byteOf.set(id, parseInt(m[1], 16))
      } else if (!this.ids.has(t)) {
        this.ids.set(t, id)
      }
    })
    this.stopTokens = stopTokensOf(vocab)
  }

  get bos (): number | undefined { return this.vocab.bos }
  get eos (): number | undefined { return this.vocab.eos }

  encode (text: string, opts: { addBos?: boolean, parseSpecial?: boolean } = {}): number[] {
    const out: number[] = []
    if (opts.addBos ?? this.vocab.addBos) {
      if (this.vocab.bos == null) throw new Error('tokenizer has no BOS token')
      out.push(this.vocab.bos)
    }
    const parts = opts.parseSpecial === true ? splitSpecial(text, this.vocab) : [text]
    parts.forEach((part, i) => {
      if (typeof part === 'number') { out.push(part); return }
      if (part === '') return
      const prefix = i === 0 && (this.vocab.addSpacePrefix ?? true) ? SPACE : ''
      out.push(...this.encodeText(prefix + part.replaceAll(' ', SPACE)))
    })
    return out
  }

  private encodeText (text: string): number[] {
    if (text.length === 0) return []
    const pieces: string[] = Array.from(text)
    // Repeatedly merge the adjacent pair whose joined text has the best score; the leftmost wins ties.
    for (;;) {
      let bestScore = -Infinity
      let bestAt = -1
      for (let i = 0; i + 1 < pieces.length; i++) {
        const id = this.ids.get(pieces[i] + pieces[i + 1])
        if (id == null) continue
        const score = this.vocab.scores?.[id] ?? 0
        if (score > bestScore) { bestScore = score; bestAt = i }
      }
      if (bestAt < 0) break
      pieces.splice(bestAt, 2, pieces[bestAt] + pieces[bestAt + 1])
    }
    const out: number[] = []
    for (const piece of pieces) {
      const id = this.ids.get(piece)
      if (id != null) { out.push(id); continue }
      for (const byte of new TextEncoder().encode(piece)) {
        const b = this.byteIds.get(byte)
        if (b == null) throw new Error(`tokenizer: no token and no byte fallback for ${JSON.stringify(piece)}`)
        out.push(b)
      }
    }
    return out
  }

  decoder (): TokenDecoder {
    const utf8 = new TextDecoder('utf-8')
    return {
      push: (id: number) => {
        const byte = this.byteOf.get(id)
        if (byte != null) return utf8.decode(new Uint8Array([byte]), { stream: true })
        const type = this.vocab.types?.[id]
        const piece = type === TokenType.CONTROL || type === TokenType.UNKNOWN || id === this.vocab.bos || id === this.vocab.eos
          ? ''
          : (this.vocab.tokens[id] ?? '')
        return utf8.decode(new Uint8Array(0), { stream: true }) + piece.replaceAll(SPACE, ' ')
      },
      flush: () => utf8.decode()
    }
  }

  decode (ids: number[]): string {
    const d = this.decoder()
    return ids.map(id => d.push(id)).join('') + d.flush()
  }
}
