import { cpus, totalmem, freemem } from 'node:os'
import { statfs } from 'node:fs/promises'
import type { Capabilities } from '../protocol/messages.ts'

const MiB = 1024 * 1024

/** Node: memory and cores from the OS, storage from the filesystem holding the data dir. */
export async function detectCapabilities (dataDir = '.'): Promise<Capabilities> {
  let storage: Capabilities['storage']
  try {
    const s = await statfs(dataDir)
    const total = s.blocks * s.bsize
    storage = { quotaMiB: Math.round(total / MiB), usageMiB: Math.round((total - s.bavail * s.bsize) / MiB) }
  } catch {
    storage = undefined
  }
  return {
    platform: 'node',
    webgpu: { available: false },
    memoryMiB: Math.round(Math.min(totalmem(), freemem() * 2) / MiB),
    cores: cpus().length,
    storage
  }
}
