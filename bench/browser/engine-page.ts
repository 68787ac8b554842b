// The browser half of bench/webgpu.bench.ts: loads a model from a URL on one backend and times
// prefill and decode with the engine the app uses, so Node can drive it through Playwright.
import { openModelSource } from '../../src/model/open-model.ts'
import { openSource } from '../../src/model/source.ts'
import { loadRuntime } from '../../src/engine/ort.ts'
import { LocalPipeline } from '../../src/engine/pipeline.ts'
import type { RuntimeOptions } from '../../src/engine/runtime.ts'

export interface EngineRun { attention: string, prefill: number[], decode: number[] }

async function benchEngine (url: string, opts: RuntimeOptions, prompt: number[], decode: number, runs: number): Promise<EngineRun> {
  const model = await openModelSource(await openSource(url))
  const pipeline = await LocalPipeline.load(model, await loadRuntime(opts))
  const result: EngineRun = { attention: pipeline.ranges[0].attention, prefill: [], decode: [] }
  for (let r = 0; r <= runs; r++) {
    pipeline.reset()
    const { timings } = await pipeline.generate(prompt, { maxTokens: decode + 1 })
    if (r === 0) continue // warm-up: shader compilation, first buffers
    result.prefill.push(timings.prefill_tokens_per_s)
    result.decode.push(timings.decode_tokens_per_s)
  }
  await pipeline.release()
  return result
}

(globalThis as any).benchEngine = benchEngine
