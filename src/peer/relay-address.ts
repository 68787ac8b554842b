/**
 * Turns what a user gives (a relay multiaddr, or the URL the relay prints) into multiaddrs.
 * A URL is asked for its /api/relay, which lists the relay's current addresses.
 */
export async function resolveRelay (input: string): Promise<string[]> {
  const value = input.trim()
  if (value.startsWith('/')) {
    if (!/\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(value)) throw new Error(`relay multiaddr must end in /p2p/<relay peer id>: ${value}`)
    return [value]
  }
  let url: URL
  try {
    url = new URL('/api/relay', value)
  } catch {
    throw new Error(`not a relay multiaddr or URL: '${value}'`)
  }
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  } catch (err: any) {
    throw new Error(`cannot reach the relay at ${url.origin} (${err?.cause?.code ?? err?.cause?.message ?? err?.message ?? err}); is it running?`)
  }
  if (!res.ok) throw new Error(`relay at ${url.origin} answered ${res.status} for /api/relay; is that a ClawNet relay?`)
  const info = await res.json().catch(() => undefined) as { multiaddrs?: unknown } | undefined
  const addrs = Array.isArray(info?.multiaddrs) ? info.multiaddrs.filter((a): a is string => typeof a === 'string') : []
  if (addrs.length === 0) throw new Error(`relay at ${url.origin} lists no multiaddrs`)
  return addrs
}
