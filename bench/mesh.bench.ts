// Mesh figures: time from page load to the first peer seen and to a direct WebRTC link, and
// tavern gossip latency (sender's envelope timestamp to receipt; one machine, one clock).
import { startRelay } from '../test/helpers/relay.ts'
import { launchChromium, newAgentContext } from '../test/helpers/browser.ts'
import { startPeerProcess } from '../test/helpers/peer-process.ts'
import { median, quantile } from '../src/stats.ts'

const LOADS = 7
const MESSAGES = 10

export async function run (): Promise<Record<string, unknown>> {
  const relay = await startRelay()
  const browser = await launchChromium()
  const peer = await startPeerProcess(relay.url, 'bench-peer')
  const origin = relay.url.replace(/\/$/, '')
  try {
    const firstPeer: number[] = []
    const firstWebRTC: number[] = []
    for (let i = 0; i < LOADS; i++) {
      const ctx = await newAgentContext(browser, origin)
      const page = await ctx.newPage()
      const t0 = Date.now()
      await page.goto(relay.url + '?ice=none')
      await page.locator('[data-testid=peer-card]').first().waitFor({ timeout: 30_000 })
      firstPeer.push(Date.now() - t0)
      console.error(`load ${i}: first peer after ${firstPeer[i]} ms`)
      await page.locator('[data-testid=peer-card][data-transport=webrtc]').first().waitFor({ timeout: 30_000 })
      firstWebRTC.push(Date.now() - t0)
      await ctx.close()
    }

    // Gossip latency across three browsers and the headless peer.
    const pages = []
    for (let i = 0; i < 3; i++) {
      const page = await (await newAgentContext(browser, origin)).newPage()
      await page.goto(relay.url + '?ice=none')
      pages.push(page)
    }
    for (const page of pages) await page.waitForFunction(() => (globalThis as any).clawnet?.snapshot().peers.length >= 3, undefined, { timeout: 30_000 })
    for (const page of pages) {
      await page.evaluate(() => {
        const g = globalThis as any
        g.latencies = []
        const seen = new Set<string>()
        g.clawnet.on('chat', () => {
          for (const m of g.clawnet.snapshot().tavern) {
            if (m.mine || seen.has(m.id)) continue
            seen.add(m.id)
            g.latencies.push(Date.now() - m.ts)
          }
        })
      })
    }
    for (let m = 0; m < MESSAGES; m++) {
      const sender = pages[m % pages.length]
      await sender.evaluate(async n => { await (globalThis as any).clawnet.sendTavern(`bench ${n}`) }, m)
      await new Promise(resolve => setTimeout(resolve, 150))
    }
    await new Promise(resolve => setTimeout(resolve, 1500))
    const latencies = (await Promise.all(pages.map(async p => await p.evaluate(() => (globalThis as any).latencies as number[])))).flat()
    const expected = MESSAGES * (pages.length - 1)
    return {
      machine: '2-core; relay, 3-4 Chromium agents and a headless peer on one host',
      page_load_to_first_peer_ms: { median: median(firstPeer), p90: quantile(firstPeer, 0.9), runs: firstPeer },
      page_load_to_direct_webrtc_ms: { median: median(firstWebRTC), p90: quantile(firstWebRTC, 0.9), runs: firstWebRTC },
      tavern_gossip_latency_ms: { median: median(latencies), p90: quantile(latencies, 0.9), delivered: latencies.length, expected }
    }
  } finally {
    await peer.stop()
    await browser.close()
    await relay.stop()
  }
}
