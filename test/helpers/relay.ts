import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { startRelay as start, type RelayHandle, type RelayOptions } from '../../relay/lib/relay-server.ts'

export const ROOT = resolve(import.meta.dirname, '../..')
export const APP_DIR = join(ROOT, 'dist')
export const MODELS_DIR = resolve(ROOT, '../shared/models')

/** A real relay on 127.0.0.1 serving the built app, with its key in a temp dir removed on stop. */
export async function startRelay (opts: RelayOptions = {}): Promise<RelayHandle & { dataDir: string }> {
  const dataDir = opts.dataDir ?? await mkdtemp(join(tmpdir(), 'clawnet-relay-'))
  const relay = await start({ appDir: APP_DIR, ...opts, dataDir })
  return {
    ...relay,
    dataDir,
    async stop () {
      await relay.stop()
      if (opts.dataDir == null) await rm(dataDir, { recursive: true, force: true })
    }
  }
}
