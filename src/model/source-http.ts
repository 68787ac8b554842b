// HTTP Range reads, shared by Node and browsers. Each read is one Range request; servers that
// ignore Range (200 with the whole body) are refused rather than silently downloading everything.
export interface ByteSource {
  readonly name: string
  readonly size: number
  read: (offset: number, length: number) => Promise<Uint8Array>
  close?: () => Promise<void>
}

/**
 * Largest single Range request: bigger reads (a 2 GB+ embedding or head) are fetched in pieces
 * of this size, so no one fetched piece reaches the 2 GB that browsers and servers trip on.
 */
export const httpPiece = { bytes: 1 << 30 }

/** Every source refuses reads outside its bytes the same way, naming the file and the offsets. */
export function checkRange (name: string, size: number, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > size) {
    throw new Error(`${name}: read of ${length} bytes at offset ${offset} is outside the file (${size} bytes): truncated or corrupt`)
  }
}

export async function openHttpSource (url: string, onProgress?: (loaded: number) => void): Promise<ByteSource> {
  let head: Response
  try {
    head = await fetch(url, { method: 'HEAD' })
  } catch (err: any) {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, …) is in its cause.
    throw new Error(`cannot reach ${url} (${err?.cause?.code ?? err?.cause?.message ?? err?.message ?? err}): check the URL and that its server is up`)
  }
  if (!head.ok) throw new Error(`${url}: HTTP ${head.status}${head.status === 404 ? ' (no such file there: check the URL)' : ''}`)
  const size = Number(head.headers.get('content-length'))
  if (!Number.isFinite(size) || size <= 0) throw new Error(`${url}: server did not report a content length`)
  const name = decodeURIComponent(new URL(url, globalThis.location?.href).pathname.split('/').pop() ?? url)
  let loaded = 0
  return {
    name,
    size,
    async read (offset, length) {
      checkRange(name, size, offset, length)
      if (length === 0) return new Uint8Array(0)
      const body = new Uint8Array(length)
      for (let done = 0; done < length;) {
        const n = Math.min(httpPiece.bytes, length - done)
        const start = offset + done
        const res = await fetch(url, { headers: { range: `bytes=${start}-${start + n - 1}` } })
        if (res.status !== 206) throw new Error(`${url}: expected 206 Partial Content for a Range request, got ${res.status}`)
        const piece = new Uint8Array(await res.arrayBuffer())
        if (piece.length !== n) throw new Error(`${url}: asked for ${n} bytes at ${start}, got ${piece.length}`)
        body.set(piece, done)
        done += n
      }
      loaded += length
      onProgress?.(loaded)
      return body
    }
  }
}
