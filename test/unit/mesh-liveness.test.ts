import { afterEach, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { LIVENESS, pingService } from '../../src/mesh/node.ts'
import { streamMuxer } from '../../src/mesh/muxer.ts'
import { connectionEncrypter } from '../../src/mesh/encrypter.ts'

const nodes: Libp2p[] = []
const children: ChildProcess[] = []
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL')
  for (const n of nodes.splice(0)) await n.stop()
})

/** A node configured as agents and the relay are, on TCP; `pingInterval` only makes the monitor ping sooner. */
async function node (pingInterval?: number, listen = false): Promise<Libp2p<{ ping: ReturnType<ReturnType<typeof pingService>> }>> {
  const n = await createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [connectionEncrypter()],
    streamMuxers: [streamMuxer()],
    connectionGater: { denyDialMultiaddr: () => false },
    connectionMonitor: { ...LIVENESS.connectionMonitor, pingInterval },
    services: { identify: identify(), ping: pingService() }
  })
  nodes.push(n)
  return n
}

/** The same node in another process, whose event loop is blocked for `ms` whenever it reads a line. */
async function stallingPeer (ms: number): Promise<{ addr: string, stall: () => Promise<void> }> {
  const code = `
    await import(${JSON.stringify(new URL('../../src/node-polyfills.ts', import.meta.url).href)})
    const { createLibp2p } = await import('libp2p'); const { tcp } = await import('@libp2p/tcp'); const { identify } = await import('@libp2p/identify')
    const { LIVENESS, pingService } = await import(${JSON.stringify(new URL('../../src/mesh/node.ts', import.meta.url).href)})
    const { streamMuxer } = await import(${JSON.stringify(new URL('../../src/mesh/muxer.ts', import.meta.url).href)})
    const { connectionEncrypter } = await import(${JSON.stringify(new URL('../../src/mesh/encrypter.ts', import.meta.url).href)})
    const n = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [connectionEncrypter()], streamMuxers: [streamMuxer()], connectionGater: { denyDialMultiaddr: () => false }, ...LIVENESS, services: { identify: identify(), ping: pingService() } })
    console.log('addr ' + n.getMultiaddrs()[0].toString())
    process.stdin.on('data', () => { const end = Date.now() + ${ms}; while (Date.now() < end); console.log('stalled') })`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] })
  children.push(child)
  const lines: string[] = []
  const waiters: Array<() => void> = []
  child.stdout!.on('data', (b: Buffer) => { lines.push(...b.toString().split('\n').filter(Boolean)); waiters.splice(0).forEach(w => { w() }) })
  const line = async (prefix: string): Promise<string> => {
    for (;;) {
      const found = lines.find(l => l.startsWith(prefix))
      if (found != null) { lines.splice(lines.indexOf(found), 1); return found }
      await new Promise<void>((resolve, reject) => { waiters.push(resolve); child.once('exit', code => { reject(new Error(`the peer exited with ${String(code)}`)) }) })
    }
  }
  const addr = (await line('addr ')).slice(5)
  return { addr, stall: async () => { child.stdin!.write('go\n'); await line('stalled') } }
}

describe('link liveness', () => {
  it('several pings share one link at once, as the connection monitor\'s and the agent\'s own do', async () => {
    const [a, b] = [await node(undefined), await node(undefined, true)]
    await a.dial(b.getMultiaddrs()[0])
    // With libp2p's default of one, the second ping was refused and the monitor aborted the link.
    const rtts = await Promise.all([1, 2, 3].map(async () => await a.services.ping.ping(b.peerId)))
    expect(rtts.every(ms => ms >= 0)).toBe(true)
    expect(a.getConnections(b.peerId).every(c => c.status === 'open')).toBe(true)
  })

  it('a peer whose event loop is blocked for 9 s keeps its link', async () => {
    const peer = await stallingPeer(9000)
    // Pinging every 2 s, four or five of the monitor's pings are waiting at once by the end.
    const a = await node(2000)
    const conn = await a.dial(multiaddr(peer.addr))
    const remote = conn.remotePeer
    await new Promise(resolve => setTimeout(resolve, 2500))
    // By default the monitor gave up on a ping after 5 s and aborted the link.
    await peer.stall()
    await new Promise(resolve => setTimeout(resolve, 1500))
    expect(conn.status).toBe('open')
    expect(await a.services.ping.ping(remote)).toBeGreaterThanOrEqual(0)
  }, 30_000)
})
