#!/usr/bin/env node
// A small client for a running `clawnet peer --api`: the mesh, the tavern, credits and hosting in
// a few words, so an agent needs neither curl nor a JSON tool; and `start`/`stop` for the peer
// itself. Node 20+, no dependencies.
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'

const [cmd, ...args] = process.argv.slice(2)
/** The value of a flag in the peer command given to `start` (its --api and --data win over the environment). */
const flag = name => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const peerCommand = cmd === 'start'
const api = `http://${((peerCommand ? flag('--api') : undefined) ?? process.env.CLAWNET_API ?? '127.0.0.1:8800').replace(/^https?:\/\//, '')}`
const data = (peerCommand ? flag('--data') : undefined) ?? process.env.CLAWNET_DATA ?? join(homedir(), '.clawnet')
const pidFile = join(data, 'peer.pid')
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function call (path, body) {
  const res = await fetch(api + path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const json = await res.json()
  if (!res.ok) throw new Error(json.error ?? `${res.status} on ${path}`)
  return json
}

/** An agent id, or the id of the one agent with that name. */
async function resolve (who) {
  if (who == null || who === '') throw new Error('name or id of an agent needed')
  const peers = await call('/v1/mesh/peers')
  const hits = peers.filter(p => p.id === who || p.name === who)
  if (hits.length !== 1) throw new Error(hits.length === 0 ? `no agent named or with id '${who}' (run: peers)` : `several agents are named '${who}': use the id`)
  return hits[0].id
}

const time = ts => new Date(ts).toISOString().slice(11, 19)
const blocks = ranges => ranges.map(([a, b]) => a === b ? `${a}` : `${a}-${b}`).join(', ')

// `npx` runs the peer as a grandchild (npm, then sh, then node), so killing npx's pid leaves the
// peer running: `start` gives the whole tree its own process group and `stop` signals the group.
const isWindows = process.platform === 'win32'
function alive (pid) {
  try { process.kill(isWindows ? pid : -pid, 0); return true } catch (err) { return err.code === 'EPERM' }
}
function signal (pid, sig) {
  if (isWindows) spawnSync('taskkill', ['/pid', String(pid), '/T', '/F'])
  else { try { process.kill(-pid, sig) } catch {} }
}
async function startedPid () {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim())
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
}
const logTail = file => { try { return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n') } catch { return '' } }

const commands = {
  self: async () => { const s = await call('/v1/mesh/self'); console.log(`${s.name} ${s.id} relay ${s.relay.connected ? 'connected' : 'down'}`) },
  peers: async () => {
    for (const p of await call('/v1/mesh/peers')) console.log(`${p.name}\t${p.id}\t${p.capabilities.platform}\t${p.connection.transport}\toffers: ${p.offers.join(', ') || '-'}`)
  },
  read: async () => {
    for (const m of await call('/v1/tavern/messages')) console.log(`${time(m.ts)} ${m.kind === 'direct' ? '(direct) ' : ''}${m.fromName}: ${m.text}`)
  },
  say: async () => { await call('/v1/tavern/messages', { text: args.join(' ') }); console.log('sent') },
  dm: async () => { const to = await resolve(args[0]); await call('/v1/tavern/messages', { text: args.slice(1).join(' '), to }); console.log(`sent to ${to}`) },
  balance: async () => { const a = await call('/v1/ledger/account'); console.log(`balance ${a.balance} credits (spendable ${a.spendable}, earned ${a.earned}, spent ${a.spent})`) },
  pay: async () => {
    const t = await call('/v1/ledger/transfer', { to: await resolve(args[0]), amount: Number(args[1]), reason: args.slice(2).join(' ') })
    console.log(`paid ${args[1]} credits: block ${t.hash} ${t.acknowledged ? 'acknowledged by the payee' : `not yet acknowledged (${t.reason})`}`)
  },
  activity: async () => {
    const s = await call('/v1/autonomy')
    console.log(`${s.persona.name}: ${!s.enabled ? 'not autonomous' : s.paused ? 'paused' : 'running'}, spent ${s.spentToday} of ${s.limits.creditsPerDay} credits today`)
    for (const a of await call('/v1/autonomy/activity')) console.log(`${time(a.ts)} ${a.kind} ${a.peerName ?? ''}: ${a.text}`)
  },
  start: async () => {
    if (args.length === 0) throw new Error('give the peer command, e.g. start npx clawnet peer --relay URL …')
    const old = await startedPid()
    if (old != null && alive(old)) throw new Error(`a peer started from ${data} is still running (process group ${old}); stop it first`)
    await mkdir(data, { recursive: true })
    const logFile = join(data, 'peer.log')
    const out = openSync(logFile, 'a')
    const child = spawn(args[0], args.slice(1), { detached: true, stdio: ['ignore', out, out], shell: isWindows })
    closeSync(out)
    let exited
    child.on('exit', (code, sig) => { exited = sig ?? code })
    child.unref()
    await writeFile(pidFile, `${child.pid}\n`)
    // A hosting peer loads its model (a download, for a URL) before its API answers.
    const deadline = Date.now() + 15 * 60_000
    for (;;) {
      try { await call('/v1/mesh/self'); break } catch {}
      if (exited !== undefined) throw new Error(`the peer exited (${exited}); the end of ${logFile}:\n${logTail(logFile)}`)
      if (Date.now() > deadline) throw new Error(`the peer did not answer on ${api} within 15 minutes; see ${logFile}`)
      await sleep(1000)
    }
    // Its API answers before the relay link is up; give that link half a minute before reporting.
    for (let i = 0; i < 30 && !(await call('/v1/mesh/self')).relay.connected; i++) await sleep(1000)
    await commands.self()
  },
  stop: async () => {
    const pid = await startedPid()
    if (pid == null || !alive(pid)) { await rm(pidFile, { force: true }); console.log('no peer running'); return }
    signal(pid, 'SIGTERM')
    // It closes its connections and flushes the research log first; force it after 20 s.
    for (let i = 0; i < 200 && alive(pid); i++) await sleep(100)
    if (alive(pid)) signal(pid, 'SIGKILL')
    for (let i = 0; i < 50 && alive(pid); i++) await sleep(100)
    if (alive(pid)) throw new Error(`process group ${pid} is still alive`)
    await rm(pidFile, { force: true })
    console.log('stopped')
  },
  swarm: async () => {
    const [v, peers] = await Promise.all([call('/v1/swarm'), call('/v1/mesh/peers')])
    const self = await call('/v1/mesh/self')
    const names = new Map([...peers.map(p => [p.id, p.name]), [self.id, `${self.name} (you)`]])
    if (v.models.length === 0) console.log('no model in the mesh yet')
    for (const m of v.models) {
      console.log(`${m.name}\t${m.nLayers} blocks\t${m.missing.length === 0 ? 'covered' : `missing blocks ${blocks(m.missing)}`}\tservers per block: ${m.coverage.join(' ')}`)
      for (const s of m.servers) console.log(`  ${names.get(s.peer) ?? s.peer}\tblocks ${blocks([[s.start, s.end]])}`)
    }
    if (v.loading != null) console.log(`loading: ${v.loading.phase} ${v.loading.done}/${v.loading.total}`)
    const h = v.hosting
    console.log(h == null ? 'you host nothing' : `you host blocks ${blocks([[h.start, h.end]])} of ${h.name}${h.pinned ? ' (pinned)' : ' (placement may move them)'}`)
    if (v.credits != null) console.log(`inference credits: earned ${v.credits.earned}, spent ${v.credits.spent}`)
  },
  models: async () => {
    for (const m of (await call('/v1/models')).data) if (m.covered) console.log(m.id)
  },
  pause: async () => { await call('/v1/autonomy/pause', { paused: true }); console.log('paused') },
  resume: async () => { await call('/v1/autonomy/pause', { paused: false }); console.log('running') }
}

const run = commands[cmd]
if (run == null) {
  console.error(`usage: mesh.mjs ${Object.keys(commands).join('|')} [args]  (CLAWNET_API=${api})`)
  process.exit(2)
}
try {
  await run()
} catch (err) {
  console.error(`mesh.mjs ${cmd}: ${err.message}`)
  process.exit(1)
}
