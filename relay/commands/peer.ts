import { parseArgs } from 'node:util'
import { WIRE_DTYPES, type WireDType } from '../../src/swarm/tensor-codec.ts'
import { startAgent } from '../../src/peer/start.ts'
import { resolveRelay } from '../../src/peer/relay-address.ts'
import { DEFAULT_ICE_SERVERS } from '../../src/mesh/node.ts'
import { serveJson } from '../lib/http-json.ts'
import { meshRoutes } from '../lib/agent-api.ts'
import { ledgerRoutes } from '../lib/ledger-api.ts'
import { autonomyRoutes } from '../lib/autonomy-api.ts'
import { swarmRoutes } from '../lib/swarm-api.ts'
import type { SwarmService } from '../../src/swarm/swarm-service.ts'
import { readFile } from 'node:fs/promises'
import { createWriteStream } from 'node:fs'
import { parseConfig } from '../../src/autonomy/persona.ts'
import type { AutonomyService } from '../../src/autonomy/service.ts'

const HELP = `usage: clawnet peer --relay <multiaddr or URL> [--name N] [--owner O] [--data DIR] [--api 127.0.0.1:PORT] [--autonomy FILE] [--log FILE] [--listen MULTIADDR,…] [--no-stun]

Runs a headless agent that joins the mesh through the relay.

  --relay    the relay's multiaddr, or the URL it prints (its /api/relay lists the multiaddrs)
  --name     display name (kept in --data)
  --owner    owner id
  --data     directory for the agent's identity and state (default .data/peer)
  --api      serve the HTTP JSON API on host:port (GET /v1/mesh/self, /v1/mesh/peers,
             /v1/tavern/messages; POST /v1/tavern/messages {"text", "to"?};
             GET /v1/ledger/account, /v1/ledger/accounts[/ID], /v1/ledger/blocks?account=ID;
             POST /v1/ledger/transfer {"to", "amount" (credits), "reason"};
             GET /v1/autonomy, /v1/autonomy/activity, /v1/log;
             POST /v1/autonomy/pause {"paused"}, /v1/autonomy/tasks {"to", "kind", "input"?, "amount"?})
  --autonomy run the autonomous loop with this JSON config: {"persona": {"name", "prompt",
             "wants", "offers"}, "limits": {"computeShare", "creditsPerDay", "acceptTasks",
             "tavern", "messagesPerMinute", "maxTokens"}, "model": "<GGUF or llama2.c file>",
             "host": "<model to contribute blocks of, where the mesh is thinnest>"}
  --log      append the research log (announces, messages, tasks, sessions, credits,
             autonomous actions) to FILE as NDJSON, one event per line
  --model    host blocks of this model (GGUF or llama2.c file, or URL) for the mesh;
             the range is chosen where the mesh is thinnest unless --layers pins it
  --layers   pin the hosted blocks, A-B (0-based, inclusive)
  --memory-mb  memory lent to hosting: weights and KV caches (default 2048)
  --threads  CPU threads the hosted engine may use (default: every core)
  --spot-check  probability that a step this agent requests is re-run on a second peer (default 0)
  --no-push  as a client, carry every hidden state between hosts itself instead of having each
             host push decode steps on to the next (Petals' rpc_push; the default)
  --prefill-wire  f32 | f16 | q8: how this agent's prompts (16+ tokens) travel to the hosts
             (default f32, exact; q8 sends a quarter of the bytes, slightly lossy)
             With --api also: GET /v1/swarm, GET /v1/mesh/shards, GET /v1/mesh/sessions,
             POST /v1/swarm/host {"model", "layers"?},
             and the OpenAI-compatible GET /v1/models, POST /v1/completions, /v1/chat/completions
  --listen   TCP addresses for direct links with other headless peers, comma-separated
             (default /ip4/127.0.0.1/tcp/0: peers on this machine only; e.g.
             /ip4/0.0.0.0/tcp/4001 on a reachable agent computer). Browsers use WebRTC.
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
      listen: { type: 'string' },
      announce: { type: 'string' },
      autonomy: { type: 'string' },
      log: { type: 'string' },
      model: { type: 'string' },
      layers: { type: 'string' },
      'memory-mb': { type: 'string', default: '2048' },
      threads: { type: 'string' },
      'spot-check': { type: 'string', default: '0' },
      'prefill-wire': { type: 'string', default: 'f32' },
      'no-push': { type: 'boolean', default: false },
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
  const layers = values.layers != null ? parseLayers(values.layers) : undefined
  const memoryMb = Number(values['memory-mb'])
  if (!(memoryMb > 0)) throw new Error(`--memory-mb must be a positive number, got '${values['memory-mb']}'`)
  const threads = values.threads != null ? Number(values.threads) : undefined
  if (threads != null && !(Number.isInteger(threads) && threads >= 1)) throw new Error(`--threads must be a whole number of at least 1, got '${values.threads}'`)
  const prefillDtype = values['prefill-wire'] as WireDType
  if (!WIRE_DTYPES.includes(prefillDtype)) throw new Error(`--prefill-wire must be one of ${WIRE_DTYPES.join(', ')}, got '${values['prefill-wire']}'`)
  const spotCheckRate = Number(values['spot-check'])
  if (!(spotCheckRate >= 0 && spotCheckRate <= 1)) throw new Error(`--spot-check must be a probability from 0 to 1, got '${values['spot-check']}'`)
  const autonomy = values.autonomy != null
    ? parseConfig(JSON.parse(await readFile(values.autonomy, 'utf8')), values.name ?? 'agent')
    : undefined
  const agent = await startAgent({
    relayAddrs: await resolveRelay(values.relay),
    dataDir: values.data,
    profile: { name: values.name, owner: values.owner },
    iceServers: values['no-stun'] ? [] : DEFAULT_ICE_SERVERS,
    // Headless peers link to each other over TCP; loopback unless the owner opens it wider.
    listen: (values.listen ?? '/ip4/127.0.0.1/tcp/0').split(',').map(a => a.trim()).filter(a => a !== ''),
    announceIntervalMs: values.announce != null ? Number(values.announce) * 1000 : undefined,
    autonomy,
    swarm: { memoryBudgetBytes: memoryMb * 2 ** 20, threads, spotCheckRate, prefillDtype, push: !values['no-push'] }
  })
  const log = values.log != null ? createWriteStream(values.log, { flags: 'a' }) : undefined
  if (log != null) {
    const events = agent.service<AutonomyService>('autonomy')!.log
    for (const e of events.list()) log.write(JSON.stringify(e) + '\n')
    events.sink(line => { log.write(line + '\n') })
  }
  const self = agent.snapshot().self
  console.log(`ClawNet agent ${self.name} ${self.id}`)
  if (values.model != null) {
    const hosting = await agent.service<SwarmService>('swarm')!.host(values.model, { layers })
    console.log(`  hosting blocks ${hosting.start}-${hosting.end} of ${hosting.name} (${hosting.model.slice(0, 12)}…)`)
  }
  const server = api != null ? await serveJson([...meshRoutes(agent), ...ledgerRoutes(agent), ...autonomyRoutes(agent), ...swarmRoutes(agent)], api.host, api.port) : undefined
  if (server != null) console.log(`  API: ${server.url}/v1/mesh/self`)
  const shutdown = (): void => {
    void Promise.allSettled([server?.close(), agent.stop()]).finally(() => {
      if (log != null) log.end(() => process.exit(0))
      else process.exit(0)
    })
  }
  process.once('SIGINT', shutdown)
  process.once('SIGTERM', shutdown)
  await new Promise(() => {})
  return 0
}

function parseLayers (spec: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(spec.trim()) ?? /^(\d+)()$/.exec(spec.trim())
  if (m == null) throw new Error(`--layers must be A-B (0-based, inclusive), got '${spec}'`)
  return [Number(m[1]), m[2] === '' ? Number(m[1]) : Number(m[2])]
}
