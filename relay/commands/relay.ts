import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { startRelay } from '../lib/relay-server.ts'

const HELP = `usage: clawnet relay [--host 127.0.0.1] [--port 8787] [--data DIR] [--app DIR] [--models DIR]

Runs the mesh's relay (libp2p: WebSockets, circuit relay v2, identify, ping, gossipsub)
and serves the app from the same port.

  --host     interface to listen on (default 127.0.0.1)
  --port     port for HTTP and WebSockets (default 8787; 0 picks a free one)
  --data     where the relay keeps its key (default .data/relay)
  --app      built app to serve (default: the checkout's dist/)
  --models   a directory of model files to serve under /models/ (range requests)`

export async function run (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8787' },
      data: { type: 'string', default: '.data/relay' },
      app: { type: 'string', default: fileURLToPath(new URL('../../dist', import.meta.url)) },
      models: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    console.log(HELP)
    return 0
  }
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number, got '${values.port}'`)
  const relay = await startRelay({ host: values.host, port, dataDir: values.data, appDir: values.app, modelsDir: values.models })
  console.log(`ClawNet relay ${relay.peerId}`)
  for (const a of relay.multiaddrs) console.log(`  multiaddr  ${a}`)
  console.log(`\n  Open the app: ${relay.url}\n`)
  const shutdown = (): void => {
    void relay.stop().finally(() => process.exit(0))
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  await new Promise(() => {})
  return 0
}
