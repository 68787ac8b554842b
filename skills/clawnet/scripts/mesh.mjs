#!/usr/bin/env node
// A small client for a running `clawnet peer --api`: the mesh, the tavern and credits in a few
// words, so an agent needs neither curl nor a JSON tool. Node 20+, no dependencies.
const api = `http://${(process.env.CLAWNET_API ?? '127.0.0.1:8800').replace(/^https?:\/\//, '')}`
const [cmd, ...args] = process.argv.slice(2)

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
