// `npm run bench [name…]`: runs every bench/*.bench.ts (or the named ones), prints each one's
// figures and writes them to bench/results/<name>.json so runs can be compared later.
import '../src/node-polyfills.ts'
import { readdir, writeFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export interface BenchModule {
  /** Returns the figures to print and save; medians, with ratios where two things are compared. */
  run: () => Promise<Record<string, unknown>>
}

const here = dirname(fileURLToPath(import.meta.url))
const wanted = new Set(process.argv.slice(2))
const files = (await readdir(here)).filter(f => f.endsWith('.bench.ts')).sort()
const selected = files.filter(f => wanted.size === 0 || wanted.has(f.replace('.bench.ts', '')))
if (selected.length === 0) {
  console.error(`no benchmark matches ${[...wanted].join(', ')}; have: ${files.join(', ')}`)
  process.exit(2)
}

await mkdir(join(here, 'results'), { recursive: true })
let failed = 0
for (const file of selected) {
  const name = file.replace('.bench.ts', '')
  console.log(`\n## ${name}`)
  try {
    const mod: BenchModule = await import(pathToFileURL(join(here, file)).href)
    const figures = { bench: name, at: new Date().toISOString(), ...(await mod.run()) }
    console.log(JSON.stringify(figures, null, 2))
    await writeFile(join(here, 'results', `${name}.json`), JSON.stringify(figures, null, 2) + '\n')
  } catch (err: any) {
    failed++
    console.error(`${name} failed: ${err?.stack ?? err}`)
  }
}
process.exit(failed > 0 ? 1 : 0)
