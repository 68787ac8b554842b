import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { startRelay, MODELS_DIR } from '../helpers/relay.ts'
import { collectErrors, launchChromium, newAgentContext } from '../helpers/browser.ts'
import { startPeerProcess, waitFor, waitForCoverage, type PeerProcess } from '../helpers/peer-process.ts'

const reference = JSON.parse(readFileSync(join(MODELS_DIR, 'stories260K/reference.json'), 'utf8'))
const [once] = reference.results

/** Longer than a shard announce lives (3 × 10 s): a host that stopped announcing would expire. */
const HIDDEN_FOR_MS = 35_000

/**
 * What a browser does to a tab in the background: it reports itself hidden, draws no frames,
 * and its timers (those already running included) wake at most once a minute: Chrome's
 * intensive throttling of hidden tabs; the milder once-a-second alignment comes first.
 * Headless Chromium never hides a tab, so every timer of the page goes through this shim from
 * the start, and `__setHidden` switches the conditions on and off; shown again, overdue timers
 * fire at once. Workers keep their own timers, as in a real browser.
 */
function throttleWhenHidden (): void {
  const g = globalThis as any
  const real = { setTimeout: g.setTimeout.bind(g), clearTimeout: g.clearTimeout.bind(g), requestAnimationFrame: g.requestAnimationFrame.bind(g) }
  const WAKE_MS = 60_000
  let hidden = false
  let nextId = 1
  const timers = new Map<number, { fn: (...a: unknown[]) => void, args: unknown[], due: number, every?: number, realId?: number }>()
  const arm = (id: number): void => {
    const t = timers.get(id)!
    const at = hidden ? Math.ceil(t.due / WAKE_MS) * WAKE_MS : t.due
    t.realId = real.setTimeout(() => { fire(id) }, Math.max(0, at - Date.now()))
  }
  const fire = (id: number): void => {
    const t = timers.get(id)
    if (t == null) return
    if (t.every != null) {
      t.due = Date.now() + t.every
      arm(id)
    } else timers.delete(id)
    t.fn(...t.args)
  }
  const add = (fn: (...a: unknown[]) => void, ms: number, args: unknown[], every?: number): number => {
    const id = nextId++
    timers.set(id, { fn, args, due: Date.now() + ms, every })
    arm(id)
    return id
  }
  g.setTimeout = (fn: (...a: unknown[]) => void, ms = 0, ...args: unknown[]) => add(fn, ms, args)
  g.setInterval = (fn: (...a: unknown[]) => void, ms = 0, ...args: unknown[]) => add(fn, Math.max(1, ms), args, Math.max(1, ms))
  g.clearTimeout = g.clearInterval = (id: number) => {
    const t = timers.get(id)
    if (t != null) real.clearTimeout(t.realId)
    timers.delete(id)
  }
  g.requestAnimationFrame = (cb: FrameRequestCallback) => hidden ? 0 : real.requestAnimationFrame(cb)
  g.__setHidden = (h: boolean) => {
    hidden = h
    for (const [id, t] of timers) {
      real.clearTimeout(t.realId)
      arm(id)
    }
    Object.defineProperty(document, 'visibilityState', { get: () => h ? 'hidden' : 'visible', configurable: true })
    Object.defineProperty(document, 'hidden', { get: () => h, configurable: true })
    document.dispatchEvent(new Event('visibilitychange'))
  }
}

async function setBackground (page: Page, hidden: boolean): Promise<void> {
  await page.evaluate(h => { (globalThis as any).__setHidden(h) }, hidden)
}

describe('a hosting tab in the background keeps contributing', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let browser: Browser
  let host: Page
  let client: PeerProcess
  const errors: string[][] = []

  beforeAll(async () => {
    relay = await startRelay({ modelsDir: MODELS_DIR })
    browser = await launchChromium()
    const ctx = await newAgentContext(browser, relay.url.replace(/\/$/, ''))
    await ctx.addInitScript(throttleWhenHidden)
    host = await ctx.newPage()
    errors.push(collectErrors(host))
    await host.goto(`${relay.url}?ice=none`)
    await host.waitForFunction(() => (globalThis as any).clawnet != null)
    await host.evaluate(async url => {
      await (globalThis as any).clawnet.service('swarm').host(url, { layers: [0, 4] })
    }, `${relay.url}models/stories260K/stories260K.gguf`)
    client = await startPeerProcess(relay.url, 'client')
    await waitForCoverage(client)
  })

  afterAll(async () => {
    await client?.stop()
    await browser?.close()
    await relay?.stop()
  })

  it('stays announced while hidden with throttled timers, serves the reference tokens, and shows whom it served', async () => {
    await setBackground(host, true)
    expect(await host.evaluate(() => document.visibilityState)).toBe('hidden')
    // For longer than an announce lives, the client must keep seeing the host, and its shard
    // announce (every 10 s, from the agent's worker heartbeat) must keep arriving on time.
    const hostId = await host.evaluate(() => (globalThis as any).clawnet.id as string)
    const lapses: number[] = []
    const refreshes: number[] = [0]
    let expiresAt = 0
    const t0 = Date.now()
    while (Date.now() - t0 < HIDDEN_FOR_MS) {
      const v = await client.get('/v1/swarm')
      const entry = v.models[0]?.servers.find((e: any) => e.peer === hostId)
      if (entry == null || v.models[0].missing.length !== 0) lapses.push(Date.now() - t0)
      else if (entry.expiresAt > expiresAt) {
        if (expiresAt > 0) refreshes.push(Date.now() - t0)
        expiresAt = entry.expiresAt
      }
      await new Promise(resolve => setTimeout(resolve, 500))
    }
    refreshes.push(Date.now() - t0)
    expect(lapses, 'moments (ms after hiding) when the client saw no host').toEqual([])
    const gaps = refreshes.slice(1).map((t, i) => t - refreshes[i])
    expect(Math.max(...gaps), `shard announces arrived at ${refreshes.join(', ')} ms after hiding`).toBeLessThan(15_000)

    const res = await client.post('/v1/completions', { model: 'stories260K.gguf', prompt: once.prompt, max_tokens: 64, temperature: 0 })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body.clawnet.tokens).toEqual(once.generated_tokens)
    expect(res.body.clawnet.routes[0].hops.map((h: any) => h.peer)).toEqual([hostId])
    // No step may have waited for a throttled timer (a minute): decode stays at network speed.
    const step = res.body.clawnet.timings.hops[0]
    expect(step.steps).toBe(63)
    expect(step.wall_ms).toBeLessThan(1000)

    // The owner, coming back to the tab, sees what it served and for whom.
    await setBackground(host, false)
    const clientId = (await client.get('/v1/mesh/self')).id as string
    await waitFor('the dashboard to list the client', async () =>
      (await host.getByTestId('hosting-client').allInnerTexts()).some(t => t.includes('client') && /\b\d+ tokens/.test(t)))
    const served = await host.evaluate(id => (globalThis as any).clawnet.service('swarm').view().hosting.stats.servedByClient[id], clientId)
    expect(served.tokens).toBe(once.prompt_tokens_with_bos.length + 63)
  })

  it('no page errors', () => {
    expect(errors.flat()).toEqual([])
  })
})
