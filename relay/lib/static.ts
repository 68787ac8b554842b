import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { extname, join, normalize, sep } from 'node:path'
import type { IncomingMessage, ServerResponse } from 'node:http'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.gguf': 'application/octet-stream',
  '.bin': 'application/octet-stream'
}

/** Resolves a URL path inside `root`, refusing anything that would climb out of it. */
export function inside (root: string, urlPath: string): string | undefined {
  let decoded: string
  try { decoded = decodeURIComponent(urlPath) } catch { return undefined }
  const full = normalize(join(root, decoded))
  return full === root || full.startsWith(root.endsWith(sep) ? root : root + sep) ? full : undefined
}

/**
 * Serves files from `root` with HTTP Range support (model shards are read by range), and
 * optionally falls back to index.html for app routes. Returns false when nothing matched.
 */
export async function serveFile (req: IncomingMessage, res: ServerResponse, root: string, urlPath: string, spaFallback = false): Promise<boolean> {
  let file = inside(root, urlPath)
  if (file == null) {
    res.writeHead(400).end('bad path')
    return true
  }
  let info = await stat(file).catch(() => undefined)
  if (info?.isDirectory() === true) {
    file = join(file, 'index.html')
    info = await stat(file).catch(() => undefined)
  }
  if (info == null || !info.isFile()) {
    if (!spaFallback || extname(urlPath) !== '') return false
    file = join(root, 'index.html')
    info = await stat(file).catch(() => undefined)
    if (info == null) return false
  }
  const headers: Record<string, string | number> = {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    // The service worker decides what to cache; index.html must always be revalidated.
    'cache-control': file.endsWith('index.html') || file.endsWith('sw.js') ? 'no-cache' : 'public, max-age=3600',
    'access-control-allow-origin': '*',
    'access-control-expose-headers': 'content-length, content-range, accept-ranges'
  }
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '')
  if (req.headers.range != null && range == null) {
    res.writeHead(416, { 'content-range': `bytes */${info.size}` }).end()
    return true
  }
  if (range != null) {
    let start = range[1] === '' ? Math.max(0, info.size - Number(range[2])) : Number(range[1])
    let end = range[1] === '' || range[2] === '' ? info.size - 1 : Number(range[2])
    end = Math.min(end, info.size - 1)
    if (start > end || start >= info.size) {
      res.writeHead(416, { 'content-range': `bytes */${info.size}` }).end()
      return true
    }
    start = Math.max(0, start)
    res.writeHead(206, { ...headers, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${info.size}` })
    if (req.method === 'HEAD') res.end()
    else createReadStream(file, { start, end }).pipe(res)
    return true
  }
  res.writeHead(200, { ...headers, 'content-length': info.size })
  if (req.method === 'HEAD') res.end()
  else createReadStream(file).pipe(res)
  return true
}
