import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export class HttpError extends Error {
  /** `param`, `code` and `type` fill in OpenAI's error fields (routes with `errors: 'openai'`). */
  constructor (readonly status: number, message: string, readonly detail: { param?: string, code?: string, type?: string } = {}) { super(message) }
}

/**
 * OpenAI's error body: its client reads `error.message`, `type`, `param` and `code` (a bare
 * string shows up JSON-quoted, with none of the fields that tools branch on).
 */
export function openaiError (err: unknown): { error: { message: string, type: string, param: string | null, code: string | null } } {
  const status = err instanceof HttpError ? err.status : 500
  const detail = err instanceof HttpError ? err.detail : {}
  return {
    error: {
      message: String((err as any)?.message ?? err),
      type: detail.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error'),
      param: detail.param ?? null,
      code: detail.code ?? null
    }
  }
}

/** A handler result sent as Server-Sent Events (`data: <json>` per event, then `data: [DONE]`). */
export class EventStream {
  constructor (readonly events: AsyncIterable<unknown>) {}
}

export interface Route {
  method: 'GET' | 'POST'
  path: RegExp
  handle: (ctx: { params: string[], query: URLSearchParams, body: any, signal: AbortSignal }) => Promise<unknown> | unknown
  /**
   * OpenAI's conventions, for its clients and the scripts written against it: errors as
   * `{ "error": { message, type, param, code } }` (otherwise `{ "error": "…" }`), and a POST answered
   * 200 (otherwise 201: the other POSTs create something).
   */
  errors?: 'openai'
}

/**
 * A bot's chat request carries its whole conversation, system prompt and tool definitions: tens
 * of KiB are common. Beyond this the model's context refuses it anyway.
 */
const MAX_BODY = 1024 * 1024

async function readJson (req: IncomingMessage): Promise<any> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += chunk.length
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes: shorten the prompt or conversation`, { code: 'request_too_large' })
    chunks.push(chunk)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new HttpError(400, 'request body is not valid JSON', { code: 'invalid_json' })
  }
}

function send (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

async function sendEvents (res: ServerResponse, stream: EventStream, abort: AbortController): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' })
  try {
    for await (const event of stream.events) {
      if (abort.signal.aborted) return
      res.write(`data: ${JSON.stringify(event)}\n\n`)
    }
    res.write('data: [DONE]\n\n')
  } catch (err: any) {
    // Headers are gone already: report the error as an event the client can show.
    res.write(`data: ${JSON.stringify(openaiError(err))}\n\n`)
  } finally {
    res.end()
  }
}

/** A tiny JSON-over-HTTP server: routes in, errors out with a fitting status, in the route's error shape. */
export async function serveJson (routes: Route[], host: string, port: number): Promise<{ server: Server, url: string, close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    let shape: Route['errors']
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost')
      const matches = routes.map(r => ({ r, m: r.path.exec(url.pathname) })).filter(x => x.m != null)
      if (matches.length === 0) throw new HttpError(404, `no such endpoint: ${url.pathname}`)
      shape = matches[0].r.errors
      const hit = matches.find(x => x.r.method === req.method)
      if (hit == null) throw new HttpError(405, `${req.method ?? '?'} not allowed on ${url.pathname}`)
      const body = req.method === 'POST' ? await readJson(req) : undefined
      // A client that hangs up stops the work it asked for (a generation, say).
      const abort = new AbortController()
      res.on('close', () => { if (!res.writableFinished) abort.abort() })
      const result = await hit.r.handle({ params: hit.m!.slice(1), query: url.searchParams, body, signal: abort.signal })
      if (result instanceof EventStream) await sendEvents(res, result, abort)
      else send(res, req.method === 'POST' && shape !== 'openai' ? 201 : 200, result)
    })().catch(err => {
      send(res, err instanceof HttpError ? err.status : 500, shape === 'openai' ? openaiError(err) : { error: String(err?.message ?? err) })
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
