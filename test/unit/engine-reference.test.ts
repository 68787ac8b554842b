// stories260K in all three files must reproduce llama2.c's greedy token ids exactly, whole and
// split into block ranges that pass hidden states between separately loaded engines.
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { openModel } from '../../src/model/open-model.ts'
import { loadRuntime } from '../../src/engine/ort.ts'
import { LocalPipeline, parseLayerRanges } from '../../src/engine/pipeline.ts'

const dir = '../shared/models/stories260K'
const reference = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8'))
const files = ['stories260K.bin', 'stories260K.gguf', 'stories260K-tied.gguf']

describe('stories260K reference', () => {
  for (const file of files) {
    for (const split of [undefined, '0-1,2-4', '0,1-3,4']) {
      it(`${file} ${split ?? 'whole'} gives llama2.c's 64 greedy ids for both prompts`, async () => {
        const { model, tokenizer } = await openModel(`${dir}/${file}`)
        const runtime = await loadRuntime()
        const pipeline = await LocalPipeline.load(model, runtime, parseLayerRanges(split, model.config.nLayers))
        for (const ref of reference.results) {
          const prompt = tokenizer.encode(ref.prompt)
          expect(prompt).toEqual(ref.prompt_tokens_with_bos)
          pipeline.reset()
          const { tokens } = await pipeline.generate(prompt, { maxTokens: 64, stopTokens: tokenizer.stopTokens })
          expect(tokens).toEqual(ref.generated_tokens)
          expect(tokenizer.decode(tokens)).toBe(ref.text)
        }
        await pipeline.release()
        await model.source.close?.()
      })
    }
  }

  it('prefill in small chunks gives the same tokens as one call', async () => {
    const { model, tokenizer } = await openModel(`${dir}/stories260K.gguf`)
    const pipeline = await LocalPipeline.load(model, await loadRuntime())
    const ref = reference.results[0]
    const { tokens } = await pipeline.generate(tokenizer.encode(ref.prompt), { maxTokens: 64, prefillChunk: 2 })
    expect(tokens).toEqual(ref.generated_tokens)
    await model.source.close?.()
  })

  it('clawnet generate --json prints prompt tokens, tokens, text and timings', async () => {
    const ref = reference.results[1]
    const { stdout } = await promisify(execFile)('node', ['bin/clawnet.js', 'generate', '--model', `${dir}/stories260K.bin`, '--prompt', ref.prompt, '--max-tokens', '64', '--layers', '0-1,2-4', '--json'])
    const out = JSON.parse(stdout)
    expect(out.prompt_tokens).toEqual(ref.prompt_tokens_with_bos)
    expect(out.tokens).toEqual(ref.generated_tokens)
    expect(out.text).toBe(ref.text)
    expect(out.timings.decode_tokens_per_s).toBeGreaterThan(0)
  })

  it('clawnet generate fails with a clear message for a range outside the model', async () => {
    const run = promisify(execFile)('node', ['bin/clawnet.js', 'generate', '--model', `${dir}/stories260K.gguf`, '--prompt', 'x', '--layers', '0-2,3-7'])
    await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('outside the model') })
  })

  it('clawnet generate refuses a model over the memory budget before loading it', async () => {
    const run = promisify(execFile)('node', ['bin/clawnet.js', 'generate', '--model', `${dir}/stories260K.gguf`, '--prompt', 'x', '--memory-budget', '1'])
    await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/needs about \d+ MiB to load .* over the memory budget of 1 MiB/) })
  })
})
