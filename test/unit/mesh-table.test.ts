import { describe, expect, it, vi } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { PeerTable } from '../../src/mesh/peer-table.ts'
import { transportOf, bestTransport } from '../../src/mesh/connections.ts'
import { canImprove, candidateAddrs, overLink, shouldDial } from '../../src/mesh/dialer.ts'
import { RateLimiter } from '../../src/mesh/rate-limit.ts'
import { RttSamples } from '../../src/mesh/rtt.ts'
import { withDeadline } from '../../src/mesh/deadline.ts'
import type { Envelope } from '../../src/protocol/envelope.ts'
import type { AnnounceBody } from '../../src/protocol/messages.ts'

const RELAY = '/ip4/127.0.0.1/tcp/8787/ws/p2p/12D3KooWEKtK7pDquL8sckfmieB4EM8GjFCd3jqpAoL31HiuQDcV'
const A = '12D3KooWD9Exo3ZsnoLKjJQSDY6Zy1YVx63Dde66KSPXJhnFdimD'
const B = '12D3KooWALxJe7ivKtzwrrnHxEQnoV68XyRCZ7VCeho3U5tX17Um'

function announce (from: string, ts: number, name = 'x', ttl = 30): Envelope<AnnounceBody> {
  return { v: 'clawnet/1.0', type: 'agent.announce', from, ts, id: `id-${ts}-${name}`, sig: '', body: { name, caps: { platform: 'node', webgpu: { available: false } }, wants: [], offers: [], hosts: [], links: [], ttl } }
}

describe('peer table', () => {
  it('adds, updates only with newer announces, and expires by TTL', () => {
    const t = new PeerTable(A)
    expect(t.applyAnnounce(announce(B, 1000, 'first'), 1000)).toBe(true)
    expect(t.applyAnnounce(announce(B, 900, 'older'), 1100)).toBe(false)
    expect(t.get(B)?.name).toBe('first')
    expect(t.applyAnnounce(announce(B, 2000, 'second', 10), 2000)).toBe(true)
    expect(t.expire(11_999)).toEqual([])
    expect(t.expire(12_000)).toEqual([B])
    expect(t.has(B)).toBe(false)
  })

  it('ignores its own announces', () => {
    const t = new PeerTable(A)
    expect(t.applyAnnounce(announce(A, 1000), 1000)).toBe(false)
    expect(t.list()).toEqual([])
  })
})

describe('transports', () => {
  const conn = (a: string, status = 'open') => ({ remoteAddr: multiaddr(a), status }) as any
  it('tells WebRTC from relayed from WebSocket by the remote address', () => {
    expect(transportOf(conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`))).toBe('webrtc')
    expect(transportOf(conn(`${RELAY}/p2p-circuit/p2p/${B}`))).toBe('relayed')
    expect(transportOf(conn(RELAY))).toBe('websocket')
    expect(transportOf(conn(`/ip4/127.0.0.1/tcp/40001/p2p/${B}`))).toBe('tcp')
  })
  it('prefers WebRTC over a relayed circuit to the same peer, and ignores closed links', () => {
    expect(bestTransport([conn(`${RELAY}/p2p-circuit/p2p/${B}`), conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`)])).toBe('webrtc')
    expect(bestTransport([conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`, 'closed')])).toBe('none')
    expect(bestTransport([conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`), conn(`/ip4/127.0.0.1/tcp/40001/p2p/${B}`)])).toBe('tcp')
  })
  it('dials WebRTC first and always with the target id appended', () => {
    const addrs = candidateAddrs(B, [`${RELAY}/p2p-circuit/webrtc`], [multiaddr(RELAY)]).map(String)
    expect(addrs[0]).toBe(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`)
    expect(addrs).toContain(`${RELAY}/p2p-circuit/p2p/${B}`)
    expect(addrs.every(a => a.endsWith(`/p2p/${B}`))).toBe(true)
    expect(new Set(addrs).size).toBe(addrs.length)
  })
  it('dials a Node agent\'s TCP listener before WebRTC, and never from a browser', () => {
    const announced = [`/ip4/127.0.0.1/tcp/40001/p2p/${B}`, `${RELAY}/p2p-circuit/webrtc`, `${RELAY}/p2p-circuit`]
    const fromNode = candidateAddrs(B, announced, [multiaddr(RELAY)], true).map(String)
    expect(fromNode[0]).toBe(`/ip4/127.0.0.1/tcp/40001/p2p/${B}`)
    expect(fromNode[1]).toBe(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`)
    const fromBrowser = candidateAddrs(B, announced, [multiaddr(RELAY)], false).map(String)
    expect(fromBrowser.some(a => !a.includes('/p2p-circuit'))).toBe(false)
    // The relay's own WebSocket address is not a TCP listener of the agent.
    expect(candidateAddrs(B, [RELAY], [], true)).toHaveLength(0)
  })
  it('replaces a WebRTC link with TCP where the agent has a TCP address, and keeps TCP', () => {
    const tcp = `/ip4/127.0.0.1/tcp/40001/p2p/${B}`
    const circuit = `${RELAY}/p2p-circuit/webrtc/p2p/${B}`
    expect(canImprove('webrtc', [tcp, circuit])).toBe(true)
    expect(canImprove('webrtc', [circuit])).toBe(false)
    expect(canImprove('tcp', [tcp])).toBe(false)
    expect(canImprove('relayed', [circuit])).toBe(true)
    expect(canImprove('none', [])).toBe(true)
  })
  it('lets exactly one side of a pair dial', () => {
    expect(shouldDial(A, B)).not.toBe(shouldDial(B, A))
  })
  it('runs over a link that works: a dead WebRTC link that looks open, then the relayed one, then a fresh dial', async () => {
    const webrtc = conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`)
    const relayed = conn(`${RELAY}/p2p-circuit/p2p/${B}`)
    const fresh = conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`)
    const node = { getConnections: () => [relayed, webrtc, conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`, 'closed')] } as any
    const tried: any[] = []
    let dials = 0
    const dial = async (): Promise<any> => { dials++; return fresh }
    const use = (works: any[]) => async (c: any): Promise<string> => {
      tried.push(c)
      if (!works.includes(c)) throw new Error('stream closed')
      return transportOf(c)
    }
    // The direct link first, even when listed last; the closed one never.
    expect(await overLink(node, B, dial, use([relayed]))).toBe('relayed')
    expect(tried).toEqual([webrtc, relayed])
    expect(dials).toBe(0)
    tried.length = 0
    expect(await overLink(node, B, dial, use([fresh]))).toBe('webrtc')
    expect(tried).toEqual([webrtc, relayed, fresh])
    await expect(overLink(node, B, dial, use([]))).rejects.toThrow(/webrtc: stream closed; relayed: stream closed; stream closed/)
    // A peer that answered and refused is not asked again over another link.
    tried.length = 0
    await expect(overLink(node, B, dial, async c => { tried.push(c); throw new Error('refused') }, err => (err as Error).message === 'refused')).rejects.toThrow('refused')
    expect(tried).toEqual([webrtc])
  })
})

describe('rate limiter', () => {
  it('allows a burst, then the steady rate', () => {
    const r = new RateLimiter(3, 1)
    expect([r.take('k', 0), r.take('k', 0), r.take('k', 0), r.take('k', 0)]).toEqual([true, true, true, false])
    expect(r.take('k', 999)).toBe(false)
    expect(r.take('k', 1000)).toBe(true)
    expect(r.take('other', 1000)).toBe(true)
  })
})

describe('round-trip times', () => {
  it('reports the median of the last five pings, so one slow ping does not move routes', () => {
    const r = new RttSamples()
    expect(r.get(A)).toBeUndefined()
    r.add(A, 2.04)
    expect(r.get(A)).toBe(2)
    r.add(A, 250)
    expect(r.get(A)).toBe(126)
    r.add(A, 3)
    expect(r.get(A)).toBe(3)
    // A link that really got slower wins once it is most of the recent samples.
    for (const ms of [40, 41, 42]) r.add(A, ms)
    expect(r.get(A)).toBe(41)
    r.delete(A)
    expect(r.get(A)).toBeUndefined()
    expect(r.get(B)).toBeUndefined()
  })
})

describe('withDeadline', () => {
  it('aborts the work past its deadline, and leaves no timer behind when the work settles first', async () => {
    vi.useFakeTimers()
    try {
      const slow = withDeadline(50, async signal => await new Promise((resolve, reject) => { signal.addEventListener('abort', () => reject(signal.reason)) }))
      const caught = slow.catch(err => err)
      await vi.advanceTimersByTimeAsync(50)
      expect(((await caught) as Error).name).toBe('TimeoutError')

      let seen: AbortSignal | undefined
      expect(await withDeadline(50, async signal => { seen = signal; return 7 })).toBe(7)
      expect(vi.getTimerCount()).toBe(0)
      await expect(withDeadline(50, async () => { throw new Error('refused') })).rejects.toThrow('refused')
      expect(vi.getTimerCount()).toBe(0)
      await vi.advanceTimersByTimeAsync(100)
      expect(seen?.aborted).toBe(false)
    } finally {
      vi.useRealTimers()
    }
  })
})
