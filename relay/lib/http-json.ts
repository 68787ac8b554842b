import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export class HttpError extends Error {
  constructor (readonly status: number, message: string) { super(message) }
}

export interface Route {
  method: 'GET' | 'POST'
  path: RegExp
  handle: (ctx: { params: string[], query: URLSearchParams, body: any }) => Promise<unknown> | unknown
}

const MAX_BODY = 64 * 1024

async function readJson (req: IncomingMessage): Promise<any> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += chunk.length
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`)
    chunks.push(chunk)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'request body is not valid JSON')
  }
}

function send (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** A tiny JSON-over-HTTP server: routes in, errors out as `{ "error": "…" }` with a fitting status. */
export async function serveJson (routes: Route[], host: string, port: number): Promise<{ server: Server, url: string, close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost')
      const matches = routes.map(r => ({ r, m: r.path.exec(url.pathname) })).filter(x => x.m != null)
      if (matches.length === 0) throw new HttpError(404, `no such endpoint: ${url.pathname}`)
      const hit = matches.find(x => x.r.method === req.method)
      if (hit == null) throw new HttpError(405, `${req.method ?? '?'} not allowed on ${url.pathname}`)
      const body = req.method === 'POST' ? await readJson(req) : undefined
      const result = await hit.r.handle({ params: hit.m!.slice(1), query: url.searchParams, body })
      send(res, req.method === 'POST' ? 201 : 200, result)
    })().catch(err => {
      send(res, err instanceof HttpError ? err.status : 500, { error: String(err?.message ?? err) })
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address() as AddressInfo
  return {
    server,
    url: `http://${host}:${addr.port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}
