import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser } from 'playwright-core'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay } from '../helpers/relay.ts'
import { launchChromium, newAgentContext } from '../helpers/browser.ts'

describe('one agent per browser profile', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let browser: Browser
  let dataDir: string

  beforeAll(async () => {
    // The relay keeps its key here across the restart below, as `clawnet relay --data` does.
    dataDir = await mkdtemp(join(tmpdir(), 'clawnet-relay-keep-'))
    relay = await startRelay({ dataDir })
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
    await relay?.stop()
    await rm(dataDir, { recursive: true, force: true })
  })

  it('a second tab does not start a duplicate peer, and can take over', async () => {
    const ctx = await newAgentContext(browser, relay.url.replace(/\/$/, ''))
    const first = await ctx.newPage()
    await first.goto(relay.url + '?ice=none')
    const id = await first.getByTestId('self-id').first().innerText()

    const second = await ctx.newPage()
    await second.goto(relay.url + '?ice=none')
    await second.getByTestId('tab-elsewhere').waitFor()
    expect(await second.evaluate(() => (globalThis as any).clawnet)).toBeUndefined()

    await second.getByTestId('take-over').click()
    await second.getByTestId('self-id').first().waitFor()
    expect(await second.getByTestId('self-id').first().innerText()).toBe(id)
    await first.getByTestId('tab-elsewhere').waitFor()
    // The first tab's libp2p node is stopped: only one peer with this key is on the relay.
    expect(await first.evaluate(() => (globalThis as any).clawnet?.node?.status)).toBe('stopped')

    // A fresh context is a different profile, so a different agent.
    const other = await (await newAgentContext(browser, relay.url.replace(/\/$/, ''))).newPage()
    await other.goto(relay.url + '?ice=none')
    expect(await other.getByTestId('self-id').first().innerText()).not.toBe(id)
  })

  it('a browser agent reconnects by itself after the relay restarts', async () => {
    const page = await (await newAgentContext(browser, relay.url.replace(/\/$/, ''))).newPage()
    await page.goto(relay.url + '?ice=none')
    await page.getByTestId('relay-status').filter({ hasText: 'connected' }).waitFor()
    const { port } = new URL(relay.url)
    await relay.stop()
    await page.waitForFunction(() => !(globalThis as any).clawnet.snapshot().self.relay.connected, undefined, { timeout: 20_000 })
    relay = await startRelay({ port: Number(port), dataDir })
    await page.waitForFunction(() => (globalThis as any).clawnet.snapshot().self.relay.connected, undefined, { timeout: 30_000 })
    expect(await page.getByTestId('relay-status').innerText()).toMatch(/connected/i)
  })
})
