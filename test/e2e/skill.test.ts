// SKILL.md cannot rot: every ```sh block in it runs, in order and as written, against a real
// relay and a real second peer ("friend", which also hosts the whole fixture model); the test
// checks what each step did in the mesh.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { startRelay, ROOT, MODELS_DIR } from '../helpers/relay.ts'
import { freePort, startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'
import { parseConfig } from '../../src/autonomy/persona.ts'

const SKILL_DIR = join(ROOT, 'skills/clawnet')
const MODEL_FILE = join(MODELS_DIR, 'stories260K/stories260K.gguf')
const MODEL = 'stories260K.gguf'
const mesh = (rest: string): string => `node ${SKILL_DIR}/scripts/mesh.mjs ${rest}`

interface Block { lang: string, code: string }

async function skillBlocks (): Promise<Block[]> {
  const md = await readFile(join(SKILL_DIR, 'SKILL.md'), 'utf8')
  return [...md.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(m => ({ lang: m[1], code: m[2].replaceAll('{baseDir}', SKILL_DIR) }))
}

/**
 * Live processes whose command line names `dir`: the peer the skill started and whatever npx
 * wrapped it in. Killing npx's own pid once left the node process running, which only a look at
 * the process table shows.
 */
async function processesUsing (dir: string): Promise<Array<{ pid: number, pgid: number, cmd: string }>> {
  const found = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmd = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ')
      if (!cmd.includes(dir)) continue
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      const [state, , pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (state !== 'Z') found.push({ pid: Number(entry), pgid: Number(pgid), cmd })
    } catch {
      // It exited while being read.
    }
  }
  return found
}

/** The pretty-printed JSON documents the API returns, in order (their braces alone start a line). */
const jsonDocs = (out: string): any[] => [...out.matchAll(/^\{$[\s\S]*?^\}$/gm)].map(m => JSON.parse(m[0]))

describe('the OpenClaw skill, command by command', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let friend: PeerProcess
  let data: string
  let env: NodeJS.ProcessEnv
  let sh: string[]
  let selfId = ''
  let friendId = ''

  /** Runs the n-th ```sh block of SKILL.md (from 1) in bash from the checkout, as an agent would. */
  const block = async (n: number, expectStart: string): Promise<string> => {
    const code = sh[n - 1]
    expect(code.trimStart().startsWith(expectStart), code).toBe(true)
    return await new Promise((resolve, reject) => {
      const child = spawn('bash', ['-euo', 'pipefail', '-c', code], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', d => { out += String(d) })
      child.stderr.on('data', d => { out += String(d) })
      child.on('exit', code => { code === 0 ? resolve(out) : reject(new Error(`block ${n} exited ${code}:\n${out}`)) })
    })
  }

  const self = async (path: string): Promise<any> => await (await fetch(`http://${env.CLAWNET_API}${path}`)).json()
  const peerProcesses = async (): Promise<Array<{ pid: number, pgid: number, cmd: string }>> => (await processesUsing(data)).filter(p => / peer .*--relay/.test(p.cmd))
  const friendSees = async (start: number, end: number): Promise<void> => {
    await waitFor(`friend to see the skill agent host blocks ${start}-${end}`, async () => {
      const m = (await friend.get('/v1/swarm')).models.find((m: any) => m.name === MODEL)
      return m?.missing.length === 0 && m.servers.some((s: any) => s.peer === selfId && s.start === start && s.end === end)
    }, 30_000, 300)
  }

  beforeAll(async () => {
    relay = await startRelay()
    friend = await startPeerProcess(relay.url, 'friend', ['--announce', '3', '--model', MODEL_FILE, '--layers', '0-4'])
    friendId = (await friend.get('/v1/mesh/self')).id
    data = await mkdtemp(join(tmpdir(), 'clawnet-skill-'))
    env = { ...process.env, CLAWNET_RELAY: relay.url, CLAWNET_NAME: 'skill-agent', CLAWNET_DATA: data, CLAWNET_API: `127.0.0.1:${await freePort()}`, CLAWNET_MODEL: MODEL_FILE, FRIEND: 'friend' }
    sh = (await skillBlocks()).filter(b => b.lang === 'sh').map(b => b.code)
  })

  afterAll(async () => {
    let leaked: Array<{ pid: number, cmd: string }> = []
    if (data != null) {
      // The skill's stop has run unless a step failed first; end its process group either way.
      const pgid = Number(await readFile(join(data, 'peer.pid'), 'utf8').catch(() => ''))
      if (pgid > 0) { try { process.kill(-pgid, 'SIGTERM') } catch {} }
      for (let i = 0; i < 100 && (await processesUsing(data)).length > 0; i++) await new Promise(resolve => setTimeout(resolve, 100))
      // Anything still here escaped the group the skill recorded: a leak a user's stop would leave too.
      leaked = await processesUsing(data)
      for (const p of leaked) { try { process.kill(p.pid, 'SIGKILL') } catch {} }
    }
    await friend?.stop()
    await relay?.stop()
    if (data != null) await rm(data, { recursive: true, force: true })
    expect(leaked).toEqual([])
  })

  it('documents the steps this test runs, and nothing else runnable', () => {
    expect(sh).toHaveLength(13)
  })

  it('1-2: sets up and starts a headless peer in a process group that holds it', async () => {
    await block(1, 'export CLAWNET_RELAY')
    const out = await block(2, mesh('start npx clawnet peer'))
    const m = /^skill-agent (12D3KooW\w+) relay connected$/m.exec(out)
    expect(m, out).not.toBeNull()
    selfId = m![1]
    const pgid = Number(await readFile(join(data, 'peer.pid'), 'utf8'))
    const peers = await peerProcesses()
    // npm exec, the shell it runs the bin with, and node: stop must reach the last one.
    expect(peers.some(p => /node .*clawnet(\.js)? peer /.test(p.cmd))).toBe(true)
    expect(peers.map(p => p.pgid)).toEqual(peers.map(() => pgid))
  })

  it('3: lists who is in the mesh', async () => {
    await waitFor('the peers to know each other', async () => (await friend.get('/v1/mesh/peers') as any[]).some(p => p.id === selfId && p.connection.transport !== 'none'), 30_000)
    const out = await block(3, mesh('peers'))
    expect(out).toMatch(new RegExp(`^friend\\t${friendId}\\tnode\\t(tcp|webrtc|relayed)`, 'm'))
  })

  it('4: reads and posts in the tavern', async () => {
    await friend.post('/v1/tavern/messages', { text: 'hello from friend' })
    await waitFor('the skill peer to hear it', async () => (await self('/v1/tavern/messages') as any[]).some(m => m.text === 'hello from friend'))
    const out = await block(4, mesh('read'))
    expect(out).toMatch(/^\d\d:\d\d:\d\d friend: hello from friend$/m)
    await waitFor('friend to read the skill agent\'s post', async () => (await friend.get('/v1/tavern/messages') as any[])
      .some(m => m.from === selfId && m.kind === 'tavern' && m.text.startsWith('Hello tavern, I am an OpenClaw agent')))
  })

  it('5: sends a direct message to friend', async () => {
    await block(5, mesh('dm'))
    const dm = (await friend.get('/v1/tavern/messages') as any[]).find(m => m.kind === 'direct' && m.from === selfId)
    expect(dm?.text).toBe('Hi! Would you like to pool GPUs for a bigger model?')
  })

  it('6: checks the balance and pays friend one credit', async () => {
    const out = await block(6, mesh('balance'))
    expect(out).toMatch(/^balance 10 credits/m)
    // The payee acknowledges at once when it already holds the payer's chain, else after a sync round.
    expect(out).toMatch(/^paid 1 credits: block [0-9a-f]{64} (acknowledged by the payee|not yet acknowledged)/m)
    await waitFor('friend to hold 11 credits', async () => (await friend.get('/v1/ledger/account')).balance === 11, 30_000)
  })

  it('7: restarts the peer hosting the model where placement puts it, stopping the old one for good', async () => {
    const before = await peerProcesses()
    const out = await block(7, mesh('stop'))
    expect(out).toMatch(/^stopped$/m)
    for (const p of before) expect(() => process.kill(p.pid, 0), p.cmd).toThrow()
    // Same key, same agent.
    expect(out).toMatch(new RegExp(`^skill-agent ${selfId} relay connected$`, 'm'))
    // Everything fits in 2048 MB, so placement takes all five blocks.
    expect(out).toMatch(/^you host blocks 0-4 of stories260K\.gguf \(placement may move them\)$/m)
    // Friend may not have re-announced to the restarted peer yet: 1 or 2 servers per block.
    expect(out).toMatch(/^stories260K\.gguf\t5 blocks\tcovered\tservers per block: [12] [12] [12] [12] [12]$/m)
    expect((await self('/v1/swarm')).hosting).toMatchObject({ name: MODEL, start: 0, end: 4, pinned: false })
    await friendSees(0, 4)
    const pgid = Number(await readFile(join(data, 'peer.pid'), 'utf8'))
    expect((await peerProcesses()).map(p => p.pgid)).toEqual(expect.arrayContaining([pgid]))
    expect((await peerProcesses()).every(p => p.pgid === pgid)).toBe(true)
  })

  it('7: a running peer moves to the blocks it is told to host', async () => {
    const out = await block(8, 'curl ')
    expect(jsonDocs(out)[0]).toMatchObject({ name: MODEL, start: 0, end: 1, pinned: true })
    expect(out).toMatch(/^you host blocks 0-1 of stories260K\.gguf \(pinned\)$/m)
    await friendSees(0, 1)
    await waitFor('the skill agent to see its own move', async () => (await self('/v1/swarm')).models[0].coverage.join(' ') === '2 2 1 1 1', 30_000, 300)
  })

  it('8: lists the mesh\'s model and chats with it, paying the hosts from its balance', async () => {
    const balance = (await self('/v1/ledger/account')).balance
    const earned = (await friend.get('/v1/swarm')).credits.earned
    const out = await block(9, 'curl ')
    const [models, chat] = jsonDocs(out)
    expect(models.data).toEqual([expect.objectContaining({ id: MODEL, covered: true, layers: 5 })])
    expect(chat.object).toBe('chat.completion')
    expect(typeof chat.choices[0].message.content).toBe('string')
    expect(chat.choices[0].message.content.length).toBeGreaterThan(20)
    expect(chat.clawnet.tokens.length).toBe(chat.usage.completion_tokens)
    expect(chat.clawnet.routes[0].hops.length).toBeGreaterThan(0)
    expect(chat.clawnet.failovers).toBe(0)
    expect(chat.clawnet.credits_paid).toBeGreaterThan(0)
    expect(chat.clawnet.payments.map((p: any) => p.server)).toContain(friendId)
    await waitFor('the payment to leave the skill agent\'s balance', async () => balance - (await self('/v1/ledger/account')).balance >= chat.clawnet.credits_paid - 1e-9, 30_000)
    await waitFor('friend to count what it earned', async () => (await friend.get('/v1/swarm')).credits.earned > earned, 30_000)
  })

  it('8: a streamed completion is the plain one, chunk by chunk', async () => {
    const out = await block(10, 'MODEL=')
    const [plain] = jsonDocs(out)
    expect(plain.choices[0].text.length).toBeGreaterThan(20)
    const events = out.split('\n').filter(l => l.startsWith('data: ')).map(l => l.slice(6))
    expect(events.at(-1)).toBe('[DONE]')
    const chunks = events.slice(0, -1).map(e => JSON.parse(e))
    expect(chunks.length).toBeGreaterThan(2)
    expect(chunks.map(c => c.choices[0].text).join('')).toBe(plain.choices[0].text)
    expect(chunks.at(-1).clawnet.tokens).toEqual(plain.clawnet.tokens)
  })

  it('8: the provider config it shows works with an OpenAI client', async () => {
    const config = JSON.parse((await skillBlocks()).find(b => b.lang === 'json' && b.code.includes('"providers"'))!.code)
    const provider = config.models.providers.clawnet
    // The config names the API address section 1 defaults to; here the peer listens elsewhere.
    const defaultApi = /CLAWNET_API:-([^}]+)\}/.exec(sh[0])![1]
    expect(provider.baseUrl).toBe(`http://${defaultApi}/v1`)
    expect(provider.api).toBe('openai-completions')
    const openai = new OpenAI({ baseURL: provider.baseUrl.replace(defaultApi, env.CLAWNET_API!), apiKey: provider.apiKey })
    expect((await openai.models.list()).data.map(m => m.id)).toContain(provider.models[0].id)
    const res = await openai.chat.completions.create({ model: provider.models[0].id, messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 24 })
    expect(res.choices[0].message.content?.length).toBeGreaterThan(10)
  })

  it('9: prints an invite link that names this agent', async () => {
    const out = await block(11, 'npx clawnet invite')
    // npm may print its own warnings first.
    const link = new URL(out.split('\n').find(l => l.startsWith('http'))!)
    expect(link.searchParams.get('inviter')).toBe(selfId)
    expect(out).toMatch(/Join ClawNet: skill-agent/)
  })

  it('10: the autonomy config is one the peer reads as written; activity, pause and resume work', async () => {
    const json = (await skillBlocks()).find(b => b.lang === 'json' && b.code.includes('"persona"'))!
    const config = parseConfig(JSON.parse(json.code), 'x')
    expect(config.persona.name).toBe('openclaw-agent')
    expect(config.limits).toMatchObject({ computeShare: 0.25, spendPerDay: 2_000_000, acceptTasks: ['chat'], tavern: true })
    const out = await block(12, mesh('activity'))
    expect(out).toMatch(/^skill-agent: not autonomous, spent 0 of 1 credits today$/m)
    expect(out).toMatch(/^paused$/m)
    expect(out).toMatch(/^running$/m)
  })

  it('11: stops the peer and all npx started for it, leaving the research log', async () => {
    expect((await peerProcesses()).length).toBeGreaterThan(0)
    const out = await block(13, mesh('stop'))
    expect(out).toMatch(/^stopped$/m)
    expect(await processesUsing(data)).toEqual([])
    await expect(fetch(`http://${env.CLAWNET_API}/v1/mesh/self`)).rejects.toThrow()
    expect((await stat(join(data, 'events.ndjson'))).size).toBeGreaterThan(0)
    const events = (await readFile(join(data, 'events.ndjson'), 'utf8')).trim().split('\n').map(l => JSON.parse(l))
    expect(events.some(e => e.type === 'message' && e.text === 'hello from friend')).toBe(true)
    expect(events.some(e => e.type === 'credit' && e.block === 'send')).toBe(true)
  })
})
