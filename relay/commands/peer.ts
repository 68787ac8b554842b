import { parseArgs } from 'node:util'
import { startAgent } from '../../src/peer/start.ts'
import { resolveRelay } from '../../src/peer/relay-address.ts'
import { DEFAULT_ICE_SERVERS } from '../../src/mesh/node.ts'
import { serveJson } from '../lib/http-json.ts'
import { meshRoutes } from '../lib/agent-api.ts'
import { ledgerRoutes } from '../lib/ledger-api.ts'

const HELP = `usage: clawnet peer --relay <multiaddr or URL> [--name N] [--owner O] [--data DIR] [--api 127.0.0.1:PORT] [--no-stun]

Runs a headless agent that joins the mesh through the relay.

  --relay    the relay's multiaddr, or the URL it prints (its /api/relay lists the multiaddrs)
  --name     display name (kept in --data)
  --owner    owner id
  --data     directory for the agent's identity and state (default .data/peer)
  --api      serve the HTTP JSON API on host:port (GET /v1/mesh/self, /v1/mesh/peers,
             /v1/tavern/messages; POST /v1/tavern/messages {"text", "to"?};
             GET /v1/ledger/account, /v1/ledger/accounts[/ID], /v1/ledger/blocks?account=ID;
             POST /v1/ledger/transfer {"to", "amount" (credits), "reason"})
  --no-stun  use no public STUN servers for WebRTC (LAN and tests)`

export async function run (argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      relay: { type: 'string' },
      name: { type: 'string' },
      owner: { type: 'string' },
      data: { type: 'string', default: '.data/peer' },
      api: { type: 'string' },
      'no-stun': { type: 'boolean', default: false },
      announce: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    console.log(HELP)
    return 0
  }
  if (values.relay == null) {
    console.error(`--relay is required\n\n${HELP}`)
    return 2
  }
  let api: { host: string, port: number } | undefined
  if (values.api != null) {
    const m = /^([^:]+):(\d+)$/.exec(values.api)
    if (m == null) throw new Error(`--api must be host:port, got '${values.api}'`)
    api = { host: m[1], port: Number(m[2]) }
  }
  const agent = await startAgent({
    relayAddrs: await resolveRelay(values.relay),
    dataDir: values.data,
    profile: { name: values.name, owner: values.owner },
    iceServers: values['no-stun'] ? [] : DEFAULT_ICE_SERVERS,
    announceIntervalMs: values.announce != null ? Number(values.announce) * 1000 : undefined
  })
  const self = agent.snapshot().self
  console.log(`ClawNet agent ${self.name} ${self.id}`)
  const server = api != null ? await serveJson([...meshRoutes(agent), ...ledgerRoutes(agent)], api.host, api.port) : undefined
  if (server != null) console.log(`  API: ${server.url}/v1/mesh/self`)
  const shutdown = (): void => {
    void Promise.allSettled([server?.close(), agent.stop()]).finally(() => process.exit(0))
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  await new Promise(() => {})
  return 0
}
