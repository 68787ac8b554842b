import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

const ROOT_FLAGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-unsafe-swiftshader']

/** The system Chromium, headless, with WebGPU through SwiftShader and WebRTC allowed on loopback. */
export async function launchChromium (extraArgs: string[] = []): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...ROOT_FLAGS, ...WEBGPU_FLAGS, '--allow-loopback-in-peer-connection', ...extraArgs]
  })
}

/** A separate browser context is a separate profile: its own IndexedDB, so its own agent. */
export async function newAgentContext (browser: Browser, origin: string): Promise<BrowserContext> {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } })
  // Chromium gathers ICE candidates on a loopback-only host only with media permission granted.
  await ctx.grantPermissions(['camera', 'microphone'], { origin }).catch(() => {})
  return ctx
}

export function collectErrors (page: Page): string[] {
  const errors: string[] = []
  page.on('pageerror', err => errors.push(String(err)))
  return errors
}

/** A fresh profile opening the app served by the relay at `relayUrl`: one new browser agent. */
export async function openAgentPage (browser: Browser, relayUrl: string, query = '?ice=none', errors?: string[][]): Promise<Page> {
  const page = await (await newAgentContext(browser, relayUrl.replace(/\/$/, ''))).newPage()
  errors?.push(collectErrors(page))
  await page.goto(relayUrl + query)
  return page
}
