import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, Page } from 'playwright-core'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { startRelay, ROOT } from '../helpers/relay.ts'
import { launchChromium, openAgentPage } from '../helpers/browser.ts'
import { startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'
import { createAgentNode } from '../../src/mesh/node.ts'
import { sayHello } from '../../src/mesh/hello.ts'
import { signEnvelope } from '../../src/protocol/envelope.ts'
import { join } from 'node:path'

type Relay = Awaited<ReturnType<typeof startRelay>>

interface ConnInfo { peer: string, addr: string, status: string }

const selfId = async (page: Page): Promise<string> => await page.getByTestId('self-id').first().innerText()
const peerIds = async (page: Page): Promise<string[]> =>
  await page.$$eval('[data-testid=peer-card]', els => els.map(e => (e as HTMLElement).dataset.peerId!))
const connections = async (page: Page): Promise<ConnInfo[]> => await page.evaluate(() =>
  (globalThis as any).clawnet.node.getConnections().map((c: any) => ({ peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), status: c.status })))
const messages = async (page: Page): Promise<Array<{ from: string, kind: string, text: string }>> =>
  await page.$$eval('[data-testid=tavern-message]', els => els.map(e => ({ from: (e as HTMLElement).dataset.from!, kind: (e as HTMLElement).dataset.kind!, text: e.textContent ?? '' })))

/** A direct WebRTC link: the last hop of the address is /webrtc, not the relay's circuit. */
const isDirectWebRTC = (addr: string): boolean => addr.lastIndexOf('/webrtc') > addr.lastIndexOf('/p2p-circuit')

describe('the mesh: relay, three browsers, one headless peer', () => {
  let relay: Relay
  let browser: Browser
  let pages: Page[] = []
  let ids: string[] = []
  let peer: PeerProcess
  let errors: string[][] = []
  const query = '?ice=none&announce=3'

  beforeAll(async () => {
    relay = await startRelay()
    browser = await launchChromium()
    for (let i = 0; i < 3; i++) pages.push(await openAgentPage(browser, relay.url, query, errors))
    peer = await startPeerProcess(relay.url, 'node-peer', ['--announce', '3'])
    ids = await Promise.all(pages.map(async p => { await p.getByTestId('self-id').first().waitFor(); return await selfId(p) }))
  })

  afterAll(async () => {
    await peer?.stop()
    await browser?.close()
    await relay?.stop()
  })

  it('every agent sees all the others', async () => {
    const nodeId = (await peer.get('/v1/mesh/self')).id as string
    const everyone = [...ids, nodeId]
    for (const [i, page] of pages.entries()) {
      const others = everyone.filter(id => id !== ids[i])
      await waitFor(`page ${i} to see ${others.length} agents`, async () => {
        const seen = await peerIds(page)
        return others.every(id => seen.includes(id))
      }, 20_000)
    }
    await waitFor('the node peer to see the three browsers', async () => {
      const seen = (await peer.get('/v1/mesh/peers')).map((p: any) => p.id)
      return ids.every(id => seen.includes(id))
    }, 20_000)
  })

  it('links between browser agents are direct WebRTC, read from the libp2p connections', async () => {
    for (const [i, page] of pages.entries()) {
      const others = ids.filter((_, j) => j !== i)
      const conns = await waitFor(`page ${i} to hold WebRTC links to both other browsers`, async () => {
        const cs = await connections(page)
        return others.every(o => cs.some(c => c.peer === o && c.status === 'open' && isDirectWebRTC(c.addr))) ? cs : undefined
      }, 40_000, 500)
      for (const o of others) expect(conns.find(c => c.peer === o && isDirectWebRTC(c.addr))?.addr).toMatch(/\/webrtc\/p2p\//)
      // The relay link itself is a WebSocket.
      expect(conns.some(c => c.peer === relay.peerId && /\/ws\//.test(c.addr + '/'))).toBe(true)
    }
  })

  it('GET /v1/mesh/peers on the node peer lists the browsers with their connection types', async () => {
    const listed = await waitFor('browsers listed with a live transport', async () => {
      const ps: any[] = await peer.get('/v1/mesh/peers')
      const browsers = ps.filter(p => ids.includes(p.id))
      return browsers.length === 3 && browsers.every(p => p.connection.transport !== 'none') ? browsers : undefined
    }, 30_000, 500)
    for (const p of listed) {
      expect(p.capabilities.platform).toBe('browser')
      expect(['webrtc', 'relayed', 'websocket']).toContain(p.connection.transport)
    }
  })

  it('a tavern message from each agent reaches every other', async () => {
    for (const [i, page] of pages.entries()) {
      await page.getByTestId('tavern-input').fill(`hello from browser ${i}`)
      await page.getByTestId('tavern-send').click()
    }
    expect((await peer.post('/v1/tavern/messages', { text: 'hello from the node peer' })).status).toBe(201)
    const texts = [0, 1, 2].map(i => `hello from browser ${i}`).concat('hello from the node peer')
    for (const [i, page] of pages.entries()) {
      await waitFor(`page ${i} to receive all tavern messages`, async () => {
        const got = (await messages(page)).map(m => m.text).join('\n')
        return texts.every(t => got.includes(t))
      }, 15_000)
    }
    await waitFor('the node peer to receive the browsers\' messages', async () => {
      const got: any[] = await peer.get('/v1/tavern/messages')
      return texts.slice(0, 3).every(t => got.some(m => m.text === t && m.kind === 'tavern'))
    }, 15_000)
    const fromPage0 = (await peer.get('/v1/tavern/messages') as any[]).find(m => m.text === 'hello from browser 0')
    expect(fromPage0.from).toBe(ids[0])
  })

  it('a direct message arrives only at its recipient', async () => {
    await pages[0].getByTestId('tavern-to').selectOption(ids[1])
    await pages[0].getByTestId('tavern-input').fill('a secret for browser 1')
    await pages[0].getByTestId('tavern-send').click()
    await waitFor('browser 1 to get the direct message', async () =>
      (await messages(pages[1])).some(m => m.kind === 'direct' && m.text.includes('a secret for browser 1') && m.from === ids[0]))
    const nodeId = (await peer.get('/v1/mesh/self')).id
    const sent = await peer.post('/v1/tavern/messages', { text: 'a secret for browser 2', to: ids[2] })
    expect(sent.status, JSON.stringify(sent.body)).toBe(201)
    await waitFor('browser 2 to get the node peer\'s direct message', async () =>
      (await messages(pages[2])).some(m => m.kind === 'direct' && m.text.includes('a secret for browser 2') && m.from === nodeId))
    // Give any misrouted copy time to show up before checking that none did.
    await new Promise(resolve => setTimeout(resolve, 1500))
    expect((await messages(pages[2])).some(m => m.text.includes('a secret for browser 1'))).toBe(false)
    expect((await messages(pages[1])).some(m => m.text.includes('a secret for browser 2'))).toBe(false)
    expect((await peer.get('/v1/tavern/messages') as any[]).some(m => !m.mine && m.text.includes('a secret'))).toBe(false)
  })

  it('rejects and counts a forged announce, which never enters the peer table', async () => {
    const nodeId = (await peer.get('/v1/mesh/self')).id as string
    const key = await generateKeyPair('Ed25519')
    const attacker = await createAgentNode({ privateKey: key, iceServers: [] })
    try {
      await attacker.dial(multiaddr(relay.multiaddrs[0]))
      const target = multiaddr(`${relay.multiaddrs[0]}/p2p-circuit/p2p/${ids[0]}`)
      const conn = await attacker.dial(target, { signal: AbortSignal.timeout(15_000) })
      const signer = { peerId: attacker.peerId.toString(), privateKey: key }
      const real = await signEnvelope(signer, 'agent.announce', {
        name: 'Mallory', caps: { platform: 'node', webgpu: { available: false } }, wants: [], offers: [], hosts: [], links: [], ttl: 30
      })
      // Claim to be the node peer: the signature no longer matches the `from` it names.
      const forged = { ...real, from: nodeId }
      const before = Number(await pages[0].getByTestId('diag-bad-signature').innerText())
      await sayHello(conn, forged, AbortSignal.timeout(10_000)).catch(() => {})
      await waitFor('the forged announce to be counted', async () =>
        Number(await pages[0].getByTestId('diag-bad-signature').innerText()) === before + 1)
      const names = await pages[0].$$eval('[data-testid=peer-card]', els => els.map(e => e.textContent ?? ''))
      expect(names.some(n => n.includes('Mallory'))).toBe(false)
      expect(await peerIds(pages[0])).not.toContain(attacker.peerId.toString())
    } finally {
      await attacker.stop()
    }
  })

  it('shows the dashboard with four agents', async () => {
    await pages[0].screenshot({ path: join(ROOT, 'docs/screenshots/dashboard.png'), fullPage: true })
    await pages[1].screenshot({ path: join(ROOT, 'docs/screenshots/dashboard-tavern.png') })
    expect((await peerIds(pages[0])).length).toBe(3)
    // The link upkeep the agent did, as its snapshot has it.
    expect(await pages[0].getByTestId('diag-links').innerText()).toMatch(/^\d+ redundant links closed · gossip streams reopened: \d+ of \d+ tries$/)
  })

  it('a reload keeps the agent id', async () => {
    await pages[1].reload()
    await pages[1].getByTestId('self-id').first().waitFor()
    expect(await selfId(pages[1])).toBe(ids[1])
  })

  it('closing a page makes its agent disappear from the others', async () => {
    await pages[2].close({ runBeforeUnload: true })
    await waitFor('browser 2 to leave browser 0\'s table', async () => !(await peerIds(pages[0])).includes(ids[2]), 15_000)
    await waitFor('browser 2 to leave the node peer\'s table', async () =>
      !(await peer.get('/v1/mesh/peers') as any[]).some(p => p.id === ids[2]), 15_000)
  })

  it('page errors: none', () => {
    expect(errors.flat()).toEqual([])
  })
})
