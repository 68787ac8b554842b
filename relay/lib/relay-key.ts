import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeDir } from '../../src/make-dir.ts'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

/**
 * The relay keeps its key across restarts: agents hold its multiaddr (with its peer id) and
 * must find the same relay when it comes back.
 */
export async function loadRelayKey (dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, 'relay-key')
  try {
    return privateKeyFromProtobuf(await readFile(file))
  } catch (err: any) {
    if (err.code !== 'ENOENT') throw new Error(`cannot read relay key ${file}: ${err.message}`)
  }
  const key = await generateKeyPair('Ed25519')
  await makeDir(dataDir, 0o700)
  await writeFile(`${file}.tmp`, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(`${file}.tmp`, file)
  return key
}
