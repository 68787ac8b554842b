import { privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { toString } from 'uint8arrays'

/** The encodings of the agent's private key that a leak could take (identity.json holds the first). */
export function keyEncodings (key: PrivateKey): string[] {
  const out: string[] = []
  for (const bytes of [privateKeyToProtobuf(key), key.raw]) {
    for (const enc of ['base64', 'base64pad', 'base64url', 'base16', 'base58btc'] as const) out.push(toString(bytes, enc))
  }
  return out
}
