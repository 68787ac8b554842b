import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { startRelay, ROOT } from '../helpers/relay.ts'
import { launchChromium, newAgentContext, collectErrors } from '../helpers/browser.ts'
import { freePort, startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'

const run = promisify(execFile)

describe('invitations', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let browser: Browser
  let a: PeerProcess

  beforeAll(async () => {
    relay = await startRelay()
    a = await startPeerProcess(relay.url, 'inviter-a', ['--announce', '3'])
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await a?.stop()
    await relay?.stop()
  })

  it('agent A prints an invite; a fresh browser opens it, connects to A first and shows who invited it', async () => {
    const { stdout } = await run(process.execPath, [join(ROOT, 'bin/clawnet.js'), 'invite', '--api', a.api], { cwd: ROOT })
    const aId = (await a.get('/v1/mesh/self')).id as string
    const link = stdout.split('\n')[0]
    const url = new URL(link)
    expect(url.origin).toBe(new URL(relay.url).origin)
    expect(url.searchParams.get('inviter')).toBe(aId)
    expect(url.searchParams.get('relay')).toBe(relay.multiaddrs[0])
    // The ready-to-post text says what ClawNet is and both ways in.
    expect(stdout).toContain('inviter-a')
    expect(stdout).toMatch(/peer-to-peer mesh/)
    expect(stdout).toContain(`npx clawnet peer --relay ${relay.multiaddrs[0]}`)

    const ctx = await newAgentContext(browser, url.origin)
    const page = await ctx.newPage()
    const errors = collectErrors(page)
    url.searchParams.set('ice', 'none')
    await page.goto(url.toString())
    const banner = page.getByTestId('invited-by')
    await waitFor('the invited-by banner to say connected', async () => await banner.getAttribute('data-state') === 'connected', 30_000)
    await waitFor('the banner to name the inviter', async () => (await banner.innerText()).includes('inviter-a'), 20_000)
    const newcomer = await page.getByTestId('self-id').first().innerText()

    const listed = await waitFor('A to list the newcomer with a live link', async () => {
      const p = (await a.get('/v1/mesh/peers') as any[]).find(x => x.id === newcomer)
      return p != null && p.connection.transport !== 'none' ? p : undefined
    }, 30_000)
    expect(listed.capabilities.platform).toBe('browser')
    // A relayed link may be swapped for a direct one at any moment, so look until one is up.
    await waitFor('the newcomer to hold a connection to A', async () => (await page.evaluate(() =>
      (globalThis as any).clawnet.node.getConnections().map((c: any) => c.remotePeer.toString())) as string[]).includes(aId), 20_000)
    expect(errors).toEqual([])
    await ctx.close()
  })

  it('the dashboard\'s Invite panel shows the link, its QR code and the text', async () => {
    const ctx = await newAgentContext(browser, relay.url.replace(/\/$/, ''))
    const page = await ctx.newPage()
    await page.goto(relay.url + '?ice=none')
    const id = await page.getByTestId('self-id').first().innerText()
    const link = new URL(await page.getByTestId('invite-link').inputValue())
    expect(link.searchParams.get('inviter')).toBe(id)
    expect(await page.getByTestId('invite-text').inputValue()).toContain(link.toString())
    expect(await page.locator('[data-testid=invite-qr] svg rect, [data-testid=invite-qr] svg path').count()).toBeGreaterThan(0)
    await ctx.close()
  })

  it('a malformed relay in the link tells the newcomer what to do', async () => {
    const ctx = await newAgentContext(browser, relay.url.replace(/\/$/, ''))
    const page = await ctx.newPage()
    await page.goto(`${relay.url}?relay=${encodeURIComponent('/ip4/127.0.0.1/tcp/1/ws')}&ice=none`)
    const failed = page.getByTestId('agent-failed')
    await failed.waitFor({ timeout: 20_000 })
    const text = await failed.innerText()
    expect(text).toMatch(/invite link does not work/)
    expect(text).toMatch(/Ask whoever invited you for a fresh link/)
    expect(text).toContain(relay.url)
    await ctx.close()
  })

  it('an unreachable relay in the link is reported on the dashboard, with what to do', async () => {
    const dead = `/ip4/127.0.0.1/tcp/${await freePort()}/ws/p2p/${relay.peerId}`
    const ctx = await newAgentContext(browser, relay.url.replace(/\/$/, ''))
    const page = await ctx.newPage()
    await page.goto(`${relay.url}?relay=${encodeURIComponent(dead)}&ice=none`)
    const err = page.getByTestId('invite-relay-error')
    await err.waitFor({ timeout: 40_000 })
    expect(await err.innerText()).toMatch(/does not answer\. Ask whoever invited you/)
    await ctx.close()
  })
})
