import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import OpenAI from 'openai'
import { startRelay, MODELS_DIR } from '../helpers/relay.ts'
import { launchChromium, openAgentPage } from '../helpers/browser.ts'
import { startPeerProcess, waitFor, waitForCoverage, type PeerProcess } from '../helpers/peer-process.ts'

const MODEL_FILE = join(MODELS_DIR, 'stories260K/stories260K.gguf')
const reference = JSON.parse(readFileSync(join(MODELS_DIR, 'stories260K/reference.json'), 'utf8'))
const [once, lily] = reference.results

interface HostPage { page: Page, id: string }

/** Reads an SSE response chunk by chunk, calling `onEvent` for each parsed `data:` event. */
async function readEvents (res: Response, onEvent: (e: any) => Promise<void> | void): Promise<void> {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buf = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buf += decoder.decode(value, { stream: true })
    let i
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, i).replace(/^data: /, '')
      buf = buf.slice(i + 2)
      if (line !== '[DONE]') await onEvent(JSON.parse(line))
    }
  }
}

describe('distributed inference: Chromium (WebGPU) and Node peers host ranges of stories260K', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let browser: Browser
  const hosts: Record<string, HostPage> = {}
  let tail: PeerProcess
  let client: PeerProcess
  let model: string
  const errors: string[][] = []

  const hostInPage = async (name: string, layers: [number, number]): Promise<HostPage> => {
    const page = await openAgentPage(browser, relay.url, '?ice=none', errors)
    await page.waitForFunction(() => (globalThis as any).clawnet != null)
    const hosted = await page.evaluate(async ([url, range]) => {
      const swarm = (globalThis as any).clawnet.service('swarm')
      const h = await swarm.host(url, { layers: range })
      return { start: h.start, end: h.end, backend: swarm.model?.runtime?.backend }
    }, [`${relay.url}models/stories260K/stories260K.gguf`, layers] as const)
    expect([hosted.start, hosted.end]).toEqual(layers)
    const id = await page.evaluate(() => (globalThis as any).clawnet.id as string)
    return { page, id }
  }

  beforeAll(async () => {
    relay = await startRelay({ modelsDir: MODELS_DIR })
    browser = await launchChromium()
    hosts.a = await hostInPage('a', [0, 1])
    hosts.b = await hostInPage('b', [2, 3])
    tail = await startPeerProcess(relay.url, 'tail-host', ['--model', MODEL_FILE, '--layers', '4-4'])
    client = await startPeerProcess(relay.url, 'client')
    const view = await waitForCoverage(client)
    model = view.models[0].model
  })

  afterAll(async () => {
    await client?.stop()
    await tail?.stop()
    await browser?.close()
    await relay?.stop()
  })

  it('the browser hosts run on WebGPU', async () => {
    for (const h of [hosts.a, hosts.b]) {
      expect(await h.page.evaluate(() => (globalThis as any).clawnet.service('swarm').model.runtime.backend)).toBe('webgpu')
    }
  })

  it('a fourth agent generates greedy through the mesh and gets exactly the reference tokens', async () => {
    const tailId = (await tail.get('/v1/mesh/self')).id
    for (const ref of [once, lily]) {
      const res = await client.post('/v1/completions', { model: 'stories260K.gguf', prompt: ref.prompt, max_tokens: 64, temperature: 0 })
      expect(res.status, JSON.stringify(res.body)).toBe(200)
      expect(res.body.clawnet.prompt_tokens).toEqual(ref.prompt_tokens_with_bos)
      expect(res.body.clawnet.tokens).toEqual(ref.generated_tokens)
      expect(res.body.choices[0].text).toBe(ref.text)
      const hops = res.body.clawnet.routes[0].hops.map((h: any) => [h.peer, h.start, h.end])
      expect(hops).toEqual([[hosts.a.id, 0, 1], [hosts.b.id, 2, 3], [tailId, 4, 4]])
      // Every decode step after the first hop went host to host (browser → browser → Node).
      expect(res.body.clawnet.pushed_steps).toBe(2 * (ref.generated_tokens.length - 1))
    }
    // Scripts see what the UI shows: the shard table, and each generation with its route.
    const shards = await client.get('/v1/mesh/shards')
    expect(shards.map((e: any) => [e.peer, e.start, e.end, e.model]).sort()).toEqual([[hosts.a.id, 0, 1, model], [hosts.b.id, 2, 3, model], [tailId, 4, 4, model]].sort())
    const sessions = await client.get('/v1/mesh/sessions')
    expect(sessions.slice(0, 2).map((s: any) => [s.status, s.name, s.tokens, s.route.map((h: any) => [h.peer, h.start, h.end])])).toEqual([lily, once].map(ref =>
      ['done', 'stories260K.gguf', ref.generated_tokens.length, [[hosts.a.id, 0, 1], [hosts.b.id, 2, 3], [tailId, 4, 4]]]))
  })

  it('survives a host vanishing mid-generation: identical tokens, and the route changes', async () => {
    hosts.c = await hostInPage('c', [2, 3])
    await waitFor('the client to see two hosts of blocks 2-3', async () =>
      (await client.get('/v1/swarm')).models[0].servers.filter((s: any) => s.start === 2 && s.end === 3).length === 2, 30_000, 300)
    const before = await client.get('/v1/swarm')
    expect(before.models[0].missing, `coverage before the kill: ${JSON.stringify(before.models[0].servers)}; tail: ${tail.output()}`).toEqual([])
    const res = await fetch(`${client.api}/v1/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K.gguf', prompt: once.prompt, max_tokens: 64, temperature: 0, stream: true })
    })
    let text = ''
    let last: any
    let killed: string | undefined
    await readEvents(res, async e => {
      if (e.error != null) throw new Error(e.error.message)
      text += e.choices[0].text
      last = e
      if (killed == null && text.length > 20) {
        // Close the page serving blocks 2-3 right now, in the middle of decoding.
        const serving = (await client.get('/v1/swarm')).lastRoute.hops.find((h: any) => h.start === 2).peer
        const victim = [hosts.b, hosts.c].find(h => h.id === serving)!
        killed = victim.id
        await victim.page.close()
      }
    })
    expect(killed).toBeDefined()
    expect(text).toBe(once.text)
    expect(last.clawnet.tokens).toEqual(once.generated_tokens)
    expect(last.clawnet.failovers).toBeGreaterThanOrEqual(1)
    const routes = last.clawnet.routes
    expect(routes[0].hops.find((h: any) => h.start === 2).peer).toBe(killed)
    expect(routes.at(-1).hops.find((h: any) => h.start === 2).peer).not.toBe(killed)
    expect(routes.at(-1).reason).toMatch(/moved off/)
    // The replacement was linked into the chain: hosts went on pushing after the failover.
    expect(last.clawnet.pushed_steps).toBeGreaterThan(0)
  })

  it('the openai client streams a chat completion and a completion from the Node peer', async () => {
    const openai = new OpenAI({ baseURL: `${client.api}/v1`, apiKey: 'not-needed' })
    const models = await openai.models.list()
    expect(models.data.map(m => m.id)).toContain('stories260K.gguf')
    let completion = ''
    for await (const chunk of await openai.completions.create({ model: 'stories260K.gguf', prompt: lily.prompt, max_tokens: 64, temperature: 0, stream: true })) {
      completion += chunk.choices[0]?.text ?? ''
    }
    expect(completion).toBe(lily.text)
    let chat = ''
    let finish: string | null | undefined
    for await (const chunk of await openai.chat.completions.create({ model: 'stories260K.gguf', messages: [{ role: 'user', content: once.prompt }], max_tokens: 20, temperature: 0, stream: true })) {
      chat += chunk.choices[0]?.delta?.content ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    // stories260K has no chat template: the prompt is the user's text, so the reply is the reference's start.
    expect(once.text.startsWith(chat)).toBe(true)
    expect(chat.length).toBeGreaterThan(20)
    expect(finish).toBe('length')
  })

  it('gives clear errors for an unknown model, a request beyond the context, and missing blocks', async () => {
    const unknown = await client.post('/v1/completions', { model: 'llama-405b', prompt: 'hi', max_tokens: 4 })
    expect(unknown.status).toBe(404)
    expect(unknown.body.error.message).toMatch(/unknown model 'llama-405b'.*stories260K\.gguf/)
    const long = await client.post('/v1/completions', { model: 'stories260K.gguf', prompt: 'hi', max_tokens: 4000 })
    expect(long.status).toBe(400)
    expect(long.body.error.message).toMatch(/context of 512/)
    await tail.stop()
    // The stopped host says goodbye, so the client soon knows block 4 is simply not served (had
    // the goodbye been lost, the host would be tried and banned until its announce lapsed).
    const missing = await waitFor('block 4 to be reported missing', async () => {
      const r = await client.post('/v1/completions', { model: 'stories260K.gguf', prompt: 'hi', max_tokens: 4 })
      expect(r.status).toBe(503)
      return /does not cover/.test(r.body.error.message) ? r : undefined
    }, 60_000, 2000)
    expect(missing.body.error.message).toMatch(/no peer serves block 4 \(of 0-4\)/)
  })

  it('no page errors', () => {
    expect(errors.flat()).toEqual([])
  })
})
