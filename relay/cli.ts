// `clawnet <command> …`: each command lives in its own module and is loaded only when used,
// so `clawnet relay` never pays for onnxruntime and `clawnet generate` never starts libp2p.
import '../src/node-polyfills.ts'

interface Command {
  summary: string
  load: () => Promise<{ run: (argv: string[]) => Promise<number | void> }>
}

const commands: Record<string, Command> = {
  relay: { summary: 'run the relay (and serve the app)', load: () => import('./commands/relay.ts') },
  peer: { summary: 'run a headless agent', load: () => import('./commands/peer.ts') },
  invite: { summary: 'print an invite link and a ready-to-post invitation', load: () => import('./commands/invite.ts') },
  generate: { summary: 'run a model locally and print what it generates', load: () => import('./commands/generate.ts') },
  convert: { summary: 'convert a llama2.c checkpoint to GGUF', load: () => import('./commands/convert.ts') },
  'repair-ledger': { summary: 'repair a stopped peer\'s damaged ledger file', load: () => import('./commands/repair-ledger.ts') }
}

function usage (): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`)
  return `usage: clawnet <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'clawnet <command> --help' for a command's options.`
}

const [name, ...argv] = process.argv.slice(2)
const command = name != null ? commands[name] : undefined
if (command == null) {
  console.error(name == null || name === '--help' || name === '-h' ? usage() : `unknown command '${name}'\n\n${usage()}`)
  process.exit(name == null || name === '--help' || name === '-h' ? 0 : 2)
}

try {
  const mod = await command.load()
  const code = await mod.run(argv)
  if (typeof code === 'number') process.exitCode = code
} catch (err: any) {
  console.error(`clawnet ${name}: ${err?.message ?? err}`)
  process.exit(1)
}
