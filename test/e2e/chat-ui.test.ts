import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { startRelay, MODELS_DIR } from '../helpers/relay.ts'
import { launchChromium, newAgentContext, collectErrors } from '../helpers/browser.ts'
import { startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'

const MODEL_FILE = join(MODELS_DIR, 'stories260K/stories260K.gguf')
const once = JSON.parse(readFileSync(join(MODELS_DIR, 'stories260K/reference.json'), 'utf8')).results[0]

/** The peer prints its id on start ("ClawNet agent <name> <id>"): the route must name that agent. */
function peerId (p: PeerProcess): string {
  const id = /ClawNet agent \S+ (\S+)/.exec(p.output())?.[1]
  if (id == null) throw new Error(`no peer id in: ${p.output()}`)
  return id
}

describe('chat view: a browser agent chats with stories260K served by two Node hosts', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let browser: Browser
  let page: Page
  let errors: string[]
  const hosts: PeerProcess[] = []

  beforeAll(async () => {
    relay = await startRelay({ modelsDir: MODELS_DIR })
    hosts.push(await startPeerProcess(relay.url, 'host-a', ['--model', MODEL_FILE, '--layers', '0-1']))
    browser = await launchChromium()
    page = await (await newAgentContext(browser, relay.url.replace(/\/$/, ''))).newPage()
    errors = collectErrors(page)
    await page.goto(`${relay.url}?ice=none#/chat`)
  })

  afterAll(async () => {
    await browser?.close()
    for (const h of hosts) await h.stop()
    await relay?.stop()
  })

  it('names the blocks nobody serves and will not send until someone does', async () => {
    const missing = page.getByTestId('chat-missing')
    await missing.waitFor({ timeout: 120_000 })
    expect(await missing.textContent()).toContain('blocks 2-4 are not served by anyone yet')
    await page.getByTestId('chat-input').fill('Once upon a time')
    expect(await page.getByTestId('chat-send').isDisabled()).toBe(true)

    hosts.push(await startPeerProcess(relay.url, 'host-b', ['--model', MODEL_FILE, '--layers', '2-4']))
    await missing.waitFor({ state: 'detached', timeout: 120_000 })
    expect(await page.getByTestId('chat-send').isDisabled()).toBe(false)
  }, 300_000)

  it('streams the greedy reference reply through both hosts, with the route, TTFT and tokens/s', async () => {
    await page.getByTestId('chat-temperature').fill('0')
    // Streaming means text is on screen while the Stop button is still there; an observer in the
    // page sees every update, where polling from here could miss a short generation.
    await page.evaluate(() => {
      const seen = (globalThis as any).partialReplySeen = { value: false }
      new MutationObserver(() => {
        const text = document.querySelector('[data-testid=chat-reply]')?.textContent ?? ''
        if (text.length > 0 && document.querySelector('[data-testid=chat-stop]') != null) seen.value = true
      }).observe(document.body, { subtree: true, childList: true, characterData: true })
    })
    await page.getByTestId('chat-send').click()
    await page.getByTestId('chat-send').waitFor({ timeout: 150_000 })

    if (await page.getByTestId('chat-error').count() > 0) throw new Error(`the chat failed: ${await page.getByTestId('chat-error').textContent()}`)
    expect(await page.evaluate(() => (globalThis as any).partialReplySeen.value)).toBe(true)
    expect(await page.getByTestId('chat-reply').textContent()).toBe(once.text)
    const hops = await page.getByTestId('chat-route-hop').evaluateAll(els => els.map(e => ({
      peer: (e as HTMLElement).dataset.peerId, start: Number((e as HTMLElement).dataset.start), end: Number((e as HTMLElement).dataset.end), text: e.textContent
    })))
    expect(hops.map(({ peer, start, end }) => ({ peer, start, end }))).toEqual([
      { peer: peerId(hosts[0]), start: 0, end: 1 },
      { peer: peerId(hosts[1]), start: 2, end: 4 }
    ])
    expect(hops[0].text).toContain('host-a')
    expect(hops[1].text).toContain('host-b')
    expect(await page.getByTestId('chat-ttft').textContent()).toMatch(/^\d+(\.\d)? m?s$/)
    expect(await page.getByTestId('chat-tps').textContent()).toMatch(/^\d+\.\d tok\/s$/)
  })

  it('shows full coverage on the dashboard, and a hosting card that says this agent serves nothing', async () => {
    await page.goto(`${relay.url}?ice=none#/`)
    const model = page.getByTestId('mesh-model')
    await model.waitFor({ timeout: 60_000 })
    expect(await model.count()).toBe(1)
    const counts = await model.getByTestId('mesh-block').evaluateAll(els => els.map(e => [Number((e as HTMLElement).dataset.block), Number((e as HTMLElement).dataset.count)]))
    expect(counts).toEqual([[0, 1], [1, 1], [2, 1], [3, 1], [4, 1]])
    expect(await page.getByTestId('mesh-missing').count()).toBe(0)
    expect(await page.getByTestId('hosting-card').textContent()).toContain('serves no model blocks')
    expect(errors).toEqual([])
  })
})
