// The browser engine in headless Chromium: decode and prefill tokens/s of WebGPU with fused
// attention (GroupQueryAttention, KV cache in GPU buffers updated in place) against plain
// attention ops (a cache that grows by Concat each step), and of WASM, on one random GQA model,
// side by side in one run. WebGPU is SwiftShader here (the GPU emulated on the CPU, where every
// kernel dispatch costs milliseconds), so the figures compare paths rather than promise GPU speed.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'vite'
import { llamaConfig } from '../test/helpers/llama-config.ts'
import { randomLlamaGguf } from '../src/model/random-model.ts'
import { openFileSource } from '../src/model/source.ts'
import { readLlama2cTokenizer } from '../src/model/llama2c.ts'
import { startRelay, ROOT, MODELS_DIR } from '../test/helpers/relay.ts'
import { launchChromium } from '../test/helpers/browser.ts'
import type { EngineRun } from './browser/engine-page.ts'
import { median } from '../src/stats.ts'

const CONFIG = llamaConfig({ dim: 256, hiddenDim: 768, nLayers: 4, nHeads: 8, nKvHeads: 2, headDim: 32, vocabSize: 512, contextLength: 1024, tiedEmbeddings: false })
const PROMPT_TOKENS = 128
const DECODE_TOKENS = 256
const RUNS = 3
const VARIANTS = [
  { label: 'webgpu_fused', opts: { backend: 'webgpu', fusedAttention: true } },
  { label: 'webgpu_ops', opts: { backend: 'webgpu', fusedAttention: false } },
  { label: 'wasm_ops', opts: { backend: 'wasm' } }
] as const

const round = (x: number): number => Math.round(x * 100) / 100

export async function run (): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'clawnet-bench-webgpu-'))
  const appDir = join(dir, 'app')
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined
  const browser = await launchChromium()
  try {
    const tok = await openFileSource(join(MODELS_DIR, 'stories260K/tok512.bin'))
    const gguf = await randomLlamaGguf(CONFIG, await readLlama2cTokenizer(tok, 512), { seed: 7 })
    await tok.close?.()
    await build({ root: join(ROOT, 'bench/browser'), configFile: false, logLevel: 'error', build: { outDir: appDir, target: 'es2022' }, optimizeDeps: { exclude: ['onnxruntime-web'] } })
    await writeFile(join(appDir, 'model.gguf'), gguf)
    relay = await startRelay({ appDir })
    const prompt = Array.from({ length: PROMPT_TOKENS }, (_, i) => i === 0 ? 1 : 3 + ((i * 37) % 500))
    const figures: Record<string, { attention: string, prefill: number, decode: number }> = {}
    let adapter = ''
    for (const { label, opts } of VARIANTS) {
      // A fresh page per variant: one's GPU buffers and shader caches do not weigh on the next.
      const page = await browser.newPage()
      await page.goto(`${relay.url}/index.html`)
      await page.waitForFunction(() => typeof (globalThis as any).benchEngine === 'function')
      adapter ||= await page.evaluate(async () => {
        const a = await (navigator as any).gpu?.requestAdapter()
        return a == null ? 'none' : `${a.info?.vendor ?? ''} ${a.info?.architecture ?? ''} ${a.info?.description ?? ''}`.trim()
      })
      const r: EngineRun = await page.evaluate(async ([o, p, d, n]) => await (globalThis as any).benchEngine('/model.gguf', o, p, d, n), [opts, prompt, DECODE_TOKENS, RUNS] as const)
      figures[label] = { attention: r.attention, prefill: round(median(r.prefill)), decode: round(median(r.decode)) }
      console.log(label, figures[label])
      await page.close()
    }
    const ratio = (a: number, b: number): number => round(a / b)
    return {
      adapter,
      model: CONFIG,
      prompt_tokens: PROMPT_TOKENS,
      decode_tokens: DECODE_TOKENS,
      runs: RUNS,
      tokens_per_s: figures,
      ratios: {
        decode_fused_vs_ops: ratio(figures.webgpu_fused.decode, figures.webgpu_ops.decode),
        prefill_fused_vs_ops: ratio(figures.webgpu_fused.prefill, figures.webgpu_ops.prefill),
        decode_webgpu_fused_vs_wasm: ratio(figures.webgpu_fused.decode, figures.wasm_ops.decode)
      }
    }
  } finally {
    await browser.close()
    await relay?.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
