// `clawnet generate`: runs a model in this process on the CPU (onnxruntime-node) and prints what it
// generates; --layers splits the blocks into separately loaded ranges to prove range equivalence.
import { parseArgs } from 'node:util'
import { totalmem } from 'node:os'
import { openModel } from '../../src/model/open-model.ts'
import { loadRuntime } from '../../src/engine/ort.ts'
import { LocalPipeline, parseLayerRanges } from '../../src/engine/pipeline.ts'

const USAGE = `usage: clawnet generate --model <file or URL> --prompt TEXT [--max-tokens N] [--temperature T]
       [--top-k K] [--top-p P] [--repeat-penalty R] [--seed S] [--layers A-B,...] [--tokenizer FILE]
       [--threads N] [--memory-budget MiB] [--f32-matmul] [--json]

Q8_0/Q4_0 weights stay packed with int8 matmuls (as llama.cpp does); --f32-matmul dequantizes
them to float32 at load instead (4x the memory, slower, no activation rounding).`

export async function run (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string', default: '' },
      'max-tokens': { type: 'string', default: '64' },
      temperature: { type: 'string', default: '0' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      'repeat-penalty': { type: 'string' },
      seed: { type: 'string', default: '0' },
      layers: { type: 'string' },
      tokenizer: { type: 'string' },
      threads: { type: 'string' },
      'memory-budget': { type: 'string' },
      'int8-matmul': { type: 'boolean', default: false },
      'f32-matmul': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false }
    }
  })
  if (values.help) { console.log(USAGE); return 0 }
  if (values.model == null) { console.error(`clawnet generate: --model is required\n${USAGE}`); return 2 }
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v == null) return undefined
    const n = Number(v)
    if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got '${v}'`)
    return n
  }
  const maxTokens = num('max-tokens', values['max-tokens']) ?? 64
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new Error(`--max-tokens must be a positive integer, got '${values['max-tokens']}'`)

  const { model, tokenizer } = await openModel(values.model, { tokenizer: values.tokenizer })
  const ranges = parseLayerRanges(values.layers, model.config.nLayers)
  const runtime = await loadRuntime({ threads: num('threads', values.threads), packedMatMul: values['f32-matmul'] ? false : values['int8-matmul'] ? true : undefined })
  const tLoad = performance.now()
  const budgetMiB = num('memory-budget', values['memory-budget'])
  const pipeline = await LocalPipeline.load(model, runtime, ranges, { memoryBudget: budgetMiB != null ? budgetMiB * 2 ** 20 : totalmem() })
  const loadMs = performance.now() - tLoad
  const promptTokens = tokenizer.encode(values.prompt)
  const decoder = tokenizer.decoder()
  const result = await pipeline.generate(promptTokens, {
    maxTokens,
    temperature: num('temperature', values.temperature),
    topK: num('top-k', values['top-k']),
    topP: num('top-p', values['top-p']),
    repetitionPenalty: num('repeat-penalty', values['repeat-penalty']),
    seed: num('seed', values.seed),
    stopTokens: tokenizer.stopTokens,
    onToken: values.json ? undefined : id => process.stdout.write(decoder.push(id))
  })
  await pipeline.release()
  await model.source.close?.()
  if (values.json) {
    const text = tokenizer.decode(result.tokens)
    console.log(JSON.stringify({ prompt_tokens: promptTokens, tokens: result.tokens, text, timings: { load_ms: loadMs, ...result.timings } }))
  } else {
    process.stdout.write(decoder.flush() + '\n')
  }
  return 0
}
