import { describe, expect, it, vi } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { PeerTable } from '../../src/mesh/peer-table.ts'
import { transportOf, bestTransport } from '../../src/mesh/connections.ts'
import { canImprove, candidateAddrs, overLink, shouldDial } from '../../src/mesh/dialer.ts'
import { RateLimiter } from '../../src/mesh/rate-limit.ts'
import { RttSamples } from '../../src/mesh/rtt.ts'
import { withDeadline } from '../../src/mesh/deadline.ts'
import { LinkHygiene, redundantLinks } from '../../src/mesh/link-hygiene.ts'
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
  it('runs over TCP before a WebRTC link to the same agent, whatever order libp2p lists them in', async () => {
    const webrtc = conn(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`)
    const tcp = conn(`/ip4/127.0.0.1/tcp/40001/p2p/${B}`)
    const node = { getConnections: () => [conn(`${RELAY}/p2p-circuit/p2p/${B}`), webrtc, tcp] } as any
    expect(await overLink(node, B, async () => { throw new Error('no dial expected') }, async c => transportOf(c))).toBe('tcp')
  })
})

describe('link hygiene', () => {
  const link = (a: string, direction: 'inbound' | 'outbound', protocols: Array<string | undefined> = ['/meshsub/1.2.0'], status = 'open') =>
    ({ remoteAddr: multiaddr(a), direction, status, streams: protocols.map(protocol => ({ protocol })) }) as any
  const relayed = (d: 'inbound' | 'outbound', p?: Array<string | undefined>) => link(`${RELAY}/p2p-circuit/p2p/${B}`, d, p)
  const webrtc = (d: 'inbound' | 'outbound', p?: Array<string | undefined>) => link(`${RELAY}/p2p-circuit/webrtc/p2p/${B}`, d, p)
  const tcp = (d: 'inbound' | 'outbound', p?: Array<string | undefined>) => link(`/ip4/127.0.0.1/tcp/40001/p2p/${B}`, d, p)

  it('closes the relayed and WebRTC links to an agent once a TCP link to it is open', () => {
    const [r, w, t] = [relayed('outbound'), webrtc('inbound'), tcp('outbound')]
    expect(redundantLinks([r, w, t], true)).toEqual({ close: [r, w], busy: 0 })
    // Without TCP nothing is redundant: a browser keeps WebRTC and the circuit beside it.
    expect(redundantLinks([r, w], true)).toEqual({ close: [], busy: 0 })
    expect(redundantLinks([r, w, link(`/ip4/127.0.0.1/tcp/40001/p2p/${B}`, 'outbound', [], 'closed')], true).close).toEqual([])
  })
  it('keeps the same one of two TCP links at both ends: the one the dialing agent opened', () => {
    // A dials (shouldDial): its outbound link is B's inbound one.
    const aOut = tcp('outbound')
    const aIn = tcp('inbound')
    expect(redundantLinks([aIn, aOut], true).close).toEqual([aIn])
    const bIn = tcp('inbound')
    const bOut = tcp('outbound')
    expect(redundantLinks([bOut, bIn], false).close).toEqual([bOut])
    // Only links the other agent opened: none of them is closed, or both ends might close different ones.
    expect(redundantLinks([tcp('inbound'), tcp('inbound')], true).close).toEqual([])
  })
  it('leaves a redundant link that carries a request or a session until it ends', () => {
    const busy = webrtc('outbound', ['/meshsub/1.2.0', '/clawnet/inference/1.0.0'])
    const negotiating = relayed('outbound', [undefined])
    const idle = relayed('inbound', [])
    expect(redundantLinks([busy, negotiating, idle, tcp('outbound')], true)).toEqual({ close: [idle], busy: 2 })
  })
  it('closes what TCP made redundant once links settle, then re-identifies the kept link so gossip reopens on it', async () => {
    vi.useFakeTimers()
    try {
      const t = tcp('outbound')
      let conns: any[] = [relayed('outbound'), webrtc('outbound', ['/meshsub/1.2.0', '/clawnet/ledger/1.0.0']), t]
      for (const c of conns) c.close = vi.fn(async () => { c.status = 'closed' })
      const identify = vi.fn(async () => ({}))
      const node = { getConnections: () => conns.filter(c => c.status === 'open'), services: { identify: { identify } } } as any
      // A dials B, so A keeps its outbound TCP link.
      const hygiene = new LinkHygiene(node, A)
      hygiene.opened(B)
      await vi.advanceTimersByTimeAsync(999)
      expect(conns[0].close).not.toHaveBeenCalled()
      await vi.advanceTimersByTimeAsync(1)
      expect(conns[0].close).toHaveBeenCalled()
      // The WebRTC link still carries a ledger request: it waits.
      expect(conns[1].close).not.toHaveBeenCalled()
      expect(identify).toHaveBeenCalledWith(t)
      conns[1].streams = [{ protocol: '/meshsub/1.2.0' }]
      await vi.advanceTimersByTimeAsync(5000)
      expect(conns[1].close).toHaveBeenCalled()
      expect(hygiene.closed).toBe(2)
      expect(identify).toHaveBeenCalledTimes(2)
      // The other end closing a link we shared gossip over: identify again, close nothing.
      conns = [t]
      hygiene.closedLink(B)
      await vi.advanceTimersByTimeAsync(1000)
      expect(identify).toHaveBeenCalledTimes(3)
      // Opening alone, with nothing lost or closed, costs no identify.
      hygiene.opened(B)
      await vi.advanceTimersByTimeAsync(1000)
      expect(identify).toHaveBeenCalledTimes(3)
      hygiene.stop()
    } finally {
      vi.useRealTimers()
    }
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
