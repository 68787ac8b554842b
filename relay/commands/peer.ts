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
import { checkModel } from '../../src/swarm/hosting.ts'
import { appendFile, readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
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

const RELAY_WARN_MS = 15_000

/** A mistake in the command line itself: reported with a pointer to --help, exit code 2. */
export class UsageError extends Error {}

/** Reads and checks the command line, before anything starts; throws UsageError. */
export function parsePeerArgs (argv: string[]) {
  let values
  try {
    ({ values } = parseArgs({
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
    }))
  } catch (err: any) {
    // Unknown flags, stray arguments, a value that starts with '-' (--layers -1-2).
    throw new UsageError(err?.message ?? String(err))
  }
  if (values.help === true) return { help: true as const }
  if (values.relay == null) throw new UsageError('--relay is required: the relay\'s multiaddr, or the URL it prints')
  if (values.relay.startsWith('/') ? !/\/p2p\/[^/]+$/.test(values.relay) : !/^https?:\/\/[^/]/.test(values.relay)) {
    throw new UsageError(`--relay must be the relay's URL (http://host:port) or its multiaddr ending in /p2p/<relay peer id>, as the relay prints them; got '${values.relay}'`)
  }
  let api: { host: string, port: number } | undefined
  if (values.api != null) {
    const m = /^([^:]+):(\d+)$/.exec(values.api)
    if (m == null || Number(m[2]) > 65535) throw new UsageError(`--api must be host:port with a port from 0 to 65535 (0: any free port), got '${values.api}'`)
    api = { host: m[1], port: Number(m[2]) }
  }
  if (values.model === '') throw new UsageError('--model is empty: give a GGUF or llama2.c file, or its URL')
  if (values.layers != null && values.model == null) throw new UsageError('--layers pins blocks of the model given with --model, and there is none')
  const layers = values.layers != null ? parseLayers(values.layers) : undefined
  const memoryMb = Number(values['memory-mb'])
  if (!(Number.isFinite(memoryMb) && memoryMb > 0)) throw new UsageError(`--memory-mb must be a positive number of MiB, got '${values['memory-mb']}'`)
  const threads = values.threads != null ? Number(values.threads) : undefined
  if (threads != null && !(Number.isInteger(threads) && threads >= 1)) throw new UsageError(`--threads must be a whole number of at least 1, got '${values.threads}'`)
  const prefillDtype = values['prefill-wire'] as WireDType
  if (!WIRE_DTYPES.includes(prefillDtype)) throw new UsageError(`--prefill-wire must be one of ${WIRE_DTYPES.join(', ')}, got '${values['prefill-wire']}'`)
  const spotCheckRate = Number(values['spot-check'])
  if (!(spotCheckRate >= 0 && spotCheckRate <= 1)) throw new UsageError(`--spot-check must be a probability from 0 to 1, got '${values['spot-check']}'`)
  const announceSeconds = values.announce != null ? Number(values.announce) : undefined
  if (announceSeconds != null && !(announceSeconds > 0)) throw new UsageError(`--announce must be a positive number of seconds, got '${values.announce}'`)
  const listen = (values.listen ?? '/ip4/127.0.0.1/tcp/0').split(',').map(a => a.trim()).filter(a => a !== '')
  const badListen = listen.find(a => !a.startsWith('/'))
  if (badListen != null) throw new UsageError(`--listen takes multiaddrs such as /ip4/127.0.0.1/tcp/4001, got '${badListen}'`)
  return { help: false as const, ...values, relay: values.relay, data: values.data!, api, layers, memoryMb, threads, prefillDtype, spotCheckRate, announceSeconds, listen }
}

export async function run (argv: string[]): Promise<number> {
  let values: Exclude<ReturnType<typeof parsePeerArgs>, { help: true }>
  try {
    const parsed = parsePeerArgs(argv)
    if (parsed.help) {
      console.log(HELP)
      return 0
    }
    values = parsed
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`clawnet peer: ${err.message}\nRun 'clawnet peer --help' for the options.`)
    return 2
  }
  const { api, layers, memoryMb, threads, prefillDtype, spotCheckRate } = values
  let autonomy
  if (values.autonomy != null) {
    try {
      autonomy = parseConfig(JSON.parse(await readFile(values.autonomy, 'utf8')), values.name ?? 'agent')
    } catch (err: any) {
      throw new Error(`--autonomy ${values.autonomy}: ${err?.code === 'ENOENT' ? 'no such file' : err?.message ?? err}`)
    }
  }
  // Whatever can be checked here is checked before the agent joins the mesh: a bad model, log
  // file or API port would otherwise show up only after the other agents have seen it arrive.
  if (values.log != null) {
    await appendFile(values.log, '').catch((err: any) => { throw new Error(`--log ${values.log}: cannot write there (${err?.code ?? err?.message ?? err})`) })
  }
  if (api != null) await checkPortFree(api.host, api.port)
  if (values.model != null) {
    await checkModel(values.model, layers, memoryMb * 2 ** 20).catch((err: any) => { throw new Error(`cannot host the model: ${err?.message ?? err}`) })
  }
  const agent = await startAgent({
    relayAddrs: await resolveRelay(values.relay),
    dataDir: values.data,
    profile: { name: values.name, owner: values.owner },
    iceServers: values['no-stun'] ? [] : DEFAULT_ICE_SERVERS,
    // Headless peers link to each other over TCP; loopback unless the owner opens it wider.
    listen: values.listen,
    announceIntervalMs: values.announceSeconds != null ? values.announceSeconds * 1000 : undefined,
    autonomy,
    swarm: { memoryBudgetBytes: memoryMb * 2 ** 20, threads, spotCheckRate, prefillDtype, push: !values['no-push'], warn: message => { console.error(`clawnet peer: ${message}`) } }
  })
  const log = values.log != null ? createWriteStream(values.log, { flags: 'a' }) : undefined
  if (log != null) {
    // A full disk or a removed directory later on costs the log, not the running agent.
    log.once('error', err => { console.error(`clawnet peer: --log ${values.log}: ${err.message}; no longer logging`) })
    const events = agent.service<AutonomyService>('autonomy')!.log
    for (const e of events.list()) log.write(JSON.stringify(e) + '\n')
    events.sink(line => { if (!log.destroyed) log.write(line + '\n') })
  }
  const self = agent.snapshot().self
  console.log(`ClawNet agent ${self.name} ${self.id}`)
  let server: Awaited<ReturnType<typeof serveJson>> | undefined
  try {
    if (values.model != null) {
      const hosting = await agent.service<SwarmService>('swarm')!.host(values.model, { layers }).catch((err: any) => {
        throw new Error(`cannot host the model: ${err?.message ?? err}`)
      })
      console.log(`  hosting blocks ${hosting.start}-${hosting.end} of ${hosting.name} (${hosting.model.slice(0, 12)}…)`)
    }
    server = api != null ? await serveJson([...meshRoutes(agent), ...ledgerRoutes(agent), ...autonomyRoutes(agent), ...swarmRoutes(agent)], api.host, api.port).catch(err => { throw apiError(api, err) }) : undefined
  } catch (err) {
    // Leave the mesh properly: the other agents would otherwise route to this one until it times out.
    await agent.stop().catch(() => {})
    log?.end()
    throw err
  }
  if (server != null) console.log(`  API: ${server.url}/v1/mesh/self`)
  // The agent keeps dialling a relay it cannot reach (it may be restarting); the owner should still hear of it.
  setTimeout(() => {
    const relay = agent.snapshot().self.relay
    if (!relay.connected) console.error(`clawnet peer: not connected to the relay ${relay.addr ?? values.relay} after ${RELAY_WARN_MS / 1000} s, still trying: check --relay and that the relay is running`)
  }, RELAY_WARN_MS).unref()
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

export function parseLayers (spec: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(spec.trim()) ?? /^(\d+)()$/.exec(spec.trim())
  if (m == null) throw new UsageError(`--layers must be A-B or A, block numbers counted from 0 (e.g. 0-3), got '${spec}'`)
  const [first, last] = [Number(m[1]), m[2] === '' ? Number(m[1]) : Number(m[2])]
  if (first > last) throw new UsageError(`--layers ${spec}: the first block comes after the last; did you mean ${last}-${first}?`)
  return [first, last]
}

function apiError (api: { host: string, port: number }, err: any): Error {
  const where = `--api ${api.host}:${api.port}`
  if (err?.code === 'EADDRINUSE') return new Error(`${where}: the port is in use (another clawnet peer?): choose another, or port 0 for any free one`)
  if (err?.code === 'EADDRNOTAVAIL' || err?.code === 'ENOTFOUND') return new Error(`${where}: this machine has no address ${api.host} (use 127.0.0.1, or 0.0.0.0 for every interface)`)
  if (err?.code === 'EACCES') return new Error(`${where}: not allowed to listen there (ports below 1024 need privileges)`)
  return new Error(`${where}: ${err?.message ?? err}`)
}

/** Refuses a busy API port before the agent joins the mesh; the real server binds it once the agent is up. */
async function checkPortFree (host: string, port: number): Promise<void> {
  if (port === 0) return
  const probe = createServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject)
    probe.listen(port, host, () => { probe.close(() => { resolve() }) })
  }).catch(err => { throw apiError({ host, port }, err) })
}
