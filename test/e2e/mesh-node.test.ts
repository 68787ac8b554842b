import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { startRelay } from '../helpers/relay.ts'
import { freePort, startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'
import { createAgentNode } from '../../src/mesh/node.ts'
import { sayHello } from '../../src/mesh/hello.ts'
import { signEnvelope } from '../../src/protocol/envelope.ts'

describe('headless peers and the relay', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let relayDir: string
  let port: number
  let a: PeerProcess
  let b: PeerProcess

  beforeAll(async () => {
    relayDir = await mkdtemp(join(tmpdir(), 'clawnet-relay-keep-'))
    port = await freePort()
    relay = await startRelay({ port, dataDir: relayDir })
    a = await startPeerProcess(relay.url, 'alpha', ['--announce', '3'])
    b = await startPeerProcess(relay.url, 'beta', ['--announce', '3'])
  })

  afterAll(async () => {
    await a?.stop()
    await b?.stop()
    await relay?.stop()
    await rm(relayDir, { recursive: true, force: true })
  })

  it('two headless peers find each other and link directly over TCP', async () => {
    const bId = (await b.get('/v1/mesh/self')).id
    // Node peers on one machine link over their loopback TCP listeners, not WebRTC or the relay
    // (a relayed link may come first, while the TCP dial is under way).
    let seen = 'none'
    const link = await waitFor('alpha to hold a TCP link to beta', async () => {
      const p = (await a.get('/v1/mesh/peers') as any[]).find(x => x.id === bId)
      seen = p?.connection.transport ?? 'unknown'
      return seen === 'tcp' ? seen : undefined
    }, 30_000).catch(err => { throw new Error(`${String(err)} (last transport: ${seen})`) })
    expect(link).toBe('tcp')
  })

  it('refuses a peer of another major version with a clear reason', async () => {
    const aId = (await a.get('/v1/mesh/self')).id
    const key = await generateKeyPair('Ed25519')
    const stranger = await createAgentNode({ privateKey: key, iceServers: [] })
    try {
      await stranger.dial(multiaddr(relay.multiaddrs[0]))
      const conn = await stranger.dial(multiaddr(`${relay.multiaddrs[0]}/p2p-circuit/p2p/${aId}`), { signal: AbortSignal.timeout(15_000) })
      const env = await signEnvelope({ peerId: stranger.peerId.toString(), privateKey: key }, 'agent.announce', {
        name: 'future', caps: { platform: 'node', webgpu: { available: false } }, wants: [], offers: [], hosts: [], links: [], ttl: 30
      })
      const res = await sayHello(conn, { ...env, v: 'clawnet/2.0' }, AbortSignal.timeout(10_000))
      expect(res.ok).toBe(false)
      if (!res.ok) expect(res.refusal.detail).toMatch(/clawnet\/2\.0.*clawnet\/1\.0.*major/)
      const diag = await waitFor('alpha to count the refusal', async () => {
        const d = await a.get('/v1/mesh/diagnostics')
        return d.rejected['wrong-version'] >= 1 ? d : undefined
      })
      expect(diag.recent.some((r: any) => r.reason === 'wrong-version')).toBe(true)
      expect((await a.get('/v1/mesh/peers') as any[]).some(p => p.name === 'future')).toBe(false)
    } finally {
      await stranger.stop()
    }
  })

  it('rejects malformed API input with a reason', async () => {
    const res = await a.post('/v1/tavern/messages', { nope: 1 })
    expect(res.status).toBe(400)
    expect(res.body.error).toMatch(/text/)
    const dm = await a.post('/v1/tavern/messages', { text: 'hi', to: '12D3KooWNotAnAgentThatExists' })
    expect(dm.status).toBe(502)
    expect(dm.body.error).toMatch(/unknown agent/)
  })

  it('peers gossip over their TCP link with the relay down, and a relay restart does not strand them', async () => {
    await relay.stop()
    await waitFor('alpha to notice the relay is gone', async () => (await a.get('/v1/mesh/self')).relay.connected === false, 20_000)
    // Their gossip runs over their own TCP link (the links they first met over are closed, and
    // gossip moved off them), so it does not need the relay at all.
    const direct = `while the relay is down ${Date.now()}`
    await waitFor('a tavern message to cross the TCP link while the relay is down', async () => {
      await a.post('/v1/tavern/messages', { text: direct })
      return (await b.get('/v1/tavern/messages') as any[]).some(m => m.text === direct)
    }, 15_000, 1500)
    relay = await startRelay({ port, dataDir: relayDir })
    await waitFor('alpha to reconnect', async () => (await a.get('/v1/mesh/self')).relay.connected === true, 30_000)
    await waitFor('beta to reconnect', async () => (await b.get('/v1/mesh/self')).relay.connected === true, 30_000)
    const text = `after the restart ${Date.now()}`
    // Gossip meshes re-form after the reconnect; keep posting until one copy arrives.
    await waitFor('a tavern message to cross the restarted relay', async () => {
      await a.post('/v1/tavern/messages', { text })
      return (await b.get('/v1/tavern/messages') as any[]).some(m => m.text === text)
    }, 30_000, 1500)
  })
})
