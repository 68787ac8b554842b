import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { openFileSource } from '../../src/model/source.ts'
import { openModelSource } from '../../src/model/open-model.ts'
import { computeManifest, MANIFEST_SUFFIX } from '../../src/model/manifest.ts'
import { inside } from './static.ts'

/**
 * Publishes a manifest beside every model file the relay serves (`<file>.manifest.json`), so a
 * host fetches only the range it serves and checks those tensors against it, instead of
 * downloading the whole model to name it. Hashed once per file version (size and mtime).
 */
export function modelManifests (root: string): (req: IncomingMessage, res: ServerResponse, urlPath: string) => Promise<boolean> {
  const cache = new Map<string, { version: string, json: Promise<string> }>()
  return async (_req, res, urlPath) => {
    if (!urlPath.endsWith(MANIFEST_SUFFIX)) return false
    const file = inside(root, urlPath.slice(0, -MANIFEST_SUFFIX.length))
    const info = file != null ? await stat(file).catch(() => undefined) : undefined
    if (file == null || info?.isFile() !== true) return false
    const version = `${info.size}:${info.mtimeMs}`
    let entry = cache.get(file)
    if (entry?.version !== version) {
      entry = { version, json: hash(file) }
      cache.set(file, entry)
    }
    let json: string
    try {
      json = await entry.json
    } catch {
      // Not a model (a tokenizer, say): no manifest, and no point asking again for this version.
      return false
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache', 'access-control-allow-origin': '*' })
    res.end(json)
    return true
  }
}

async function hash (file: string): Promise<string> {
  const source = await openFileSource(file)
  try {
    return JSON.stringify(await computeManifest(await openModelSource(source)))
  } finally {
    await source.close?.()
  }
}
