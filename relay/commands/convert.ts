// `clawnet convert`: writes a llama2.c checkpoint (and its tokenizer) as a GGUF file that both
// this engine and llama.cpp load, optionally quantizing the 2-D weights.
import { parseArgs } from 'node:util'
import { writeFile } from 'node:fs/promises'
import { openModel } from '../../src/model/open-model.ts'
import { readTensor } from '../../src/model/model-file.ts'
import { buildLlamaGguf } from '../../src/model/llama-gguf.ts'
import { GgmlType } from '../../src/model/ggml-types.ts'

const USAGE = 'usage: clawnet convert --model <llama2.c .bin> --out <file.gguf> [--tokenizer FILE] [--type f32|f16|q8_0|q4_0|q4_k|q6_k] [--name NAME]'
const TYPES: Record<string, GgmlType> = { f32: GgmlType.F32, f16: GgmlType.F16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0, q4_k: GgmlType.Q4_K, q6_k: GgmlType.Q6_K }

export async function run (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' },
      type: { type: 'string', default: 'f32' }, name: { type: 'string' }, help: { type: 'boolean', default: false }
    }
  })
  if (values.help) { console.log(USAGE); return 0 }
  if (values.model == null || values.out == null) { console.error(`clawnet convert: --model and --out are required\n${USAGE}`); return 2 }
  const type = TYPES[values.type.toLowerCase()]
  if (type == null) { console.error(`clawnet convert: unknown --type '${values.type}' (${Object.keys(TYPES).join(', ')})`); return 2 }
  const { model, tokenizer } = await openModel(values.model, { tokenizer: values.tokenizer })
  if (model.format !== 'llama2c') { console.error(`clawnet convert: ${values.model} is already ${model.format}; only llama2.c checkpoints are converted`); return 2 }
  const bytes = await buildLlamaGguf(model.config, tokenizer.vocab, async name => await readTensor(model, name), { type, name: values.name ?? model.source.name.replace(/\.bin$/, '') })
  await model.source.close?.()
  await writeFile(values.out, bytes)
  console.error(`wrote ${values.out}: ${bytes.length} bytes, ${model.config.nLayers} blocks, weights ${values.type}`)
  return 0
}
