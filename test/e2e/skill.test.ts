// SKILL.md cannot rot: every ```sh block in it runs, in order and as written, against a real
// relay and a real second peer ("friend"); the test checks what each step did in the mesh.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRelay, ROOT } from '../helpers/relay.ts'
import { freePort, startPeerProcess, waitFor, type PeerProcess } from '../helpers/peer-process.ts'
import { parseConfig } from '../../src/autonomy/persona.ts'

const SKILL_DIR = join(ROOT, 'skills/clawnet')

interface Block { lang: string, code: string }

async function skillBlocks (): Promise<Block[]> {
  const md = await readFile(join(SKILL_DIR, 'SKILL.md'), 'utf8')
  return [...md.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(m => ({ lang: m[1], code: m[2].replaceAll('{baseDir}', SKILL_DIR) }))
}

describe('the OpenClaw skill, command by command', () => {
  let relay: Awaited<ReturnType<typeof startRelay>>
  let friend: PeerProcess
  let data: string
  let env: NodeJS.ProcessEnv
  let sh: string[]
  let step = 0
  let selfId = ''

  /** Runs the next ```sh block of SKILL.md in bash from the checkout, as an agent would. */
  const next = async (expectStart: string): Promise<string> => {
    const code = sh[step++]
    expect(code.trimStart().startsWith(expectStart)).toBe(true)
    return await new Promise((resolve, reject) => {
      const child = spawn('bash', ['-euo', 'pipefail', '-c', code], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', d => { out += String(d) })
      child.stderr.on('data', d => { out += String(d) })
      child.on('exit', code => { code === 0 ? resolve(out) : reject(new Error(`step ${step} exited ${code}:\n${out}`)) })
    })
  }

  beforeAll(async () => {
    relay = await startRelay()
    friend = await startPeerProcess(relay.url, 'friend', ['--announce', '3'])
    data = await mkdtemp(join(tmpdir(), 'clawnet-skill-'))
    env = { ...process.env, CLAWNET_RELAY: relay.url, CLAWNET_NAME: 'skill-agent', CLAWNET_DATA: data, CLAWNET_API: `127.0.0.1:${await freePort()}`, FRIEND: 'friend' }
    sh = (await skillBlocks()).filter(b => b.lang === 'sh').map(b => b.code)
  })

  afterAll(async () => {
    const pid = await readFile(join(data, 'peer.pid'), 'utf8').catch(() => undefined)
    if (pid != null) { try { process.kill(Number(pid)) } catch {} }
    await friend?.stop()
    await relay?.stop()
    await rm(data, { recursive: true, force: true })
  })

  it('documents the steps this test runs, and nothing else runnable', () => {
    expect(sh).toHaveLength(9)
  })

  it('1-2: sets up and starts a headless peer', async () => {
    await next('export CLAWNET_RELAY')
    const out = await next('npx clawnet peer')
    const m = /^skill-agent (12D3KooW\w+) relay/m.exec(out)
    expect(m).not.toBeNull()
    selfId = m![1]
  })

  it('3: lists who is in the mesh', async () => {
    const friendId = (await friend.get('/v1/mesh/self')).id
    await waitFor('the peers to know each other', async () => (await friend.get('/v1/mesh/peers') as any[]).some(p => p.id === selfId && p.connection.transport !== 'none'), 30_000)
    const out = await next('node ')
    expect(out).toMatch(new RegExp(`^friend\\t${friendId}\\tnode\\t(webrtc|relayed)`, 'm'))
  })

  it('4: reads and posts in the tavern', async () => {
    await friend.post('/v1/tavern/messages', { text: 'hello from friend' })
    await waitFor('the skill peer to hear it', async () => {
      const res = await fetch(`http://${env.CLAWNET_API}/v1/tavern/messages`)
      return (await res.json() as any[]).some(m => m.text === 'hello from friend')
    })
    const out = await next('node ')
    expect(out).toMatch(/^\d\d:\d\d:\d\d friend: hello from friend$/m)
    await waitFor('friend to read the skill agent\'s post', async () => (await friend.get('/v1/tavern/messages') as any[])
      .some(m => m.from === selfId && m.kind === 'tavern' && m.text.startsWith('Hello tavern, I am an OpenClaw agent')))
  })

  it('5: sends a direct message to friend', async () => {
    await next('node ')
    const dm = (await friend.get('/v1/tavern/messages') as any[]).find(m => m.kind === 'direct' && m.from === selfId)
    expect(dm?.text).toBe('Hi! Would you like to pool GPUs for a bigger model?')
  })

  it('6: checks the balance and pays friend one credit', async () => {
    const out = await next('node ')
    expect(out).toMatch(/^balance 10 credits/m)
    // The payee acknowledges at once when it already holds the payer's chain, else after a sync round.
    expect(out).toMatch(/^paid 1 credits: block [0-9a-f]{64} (acknowledged by the payee|not yet acknowledged)/m)
    await waitFor('friend to hold 11 credits', async () => (await friend.get('/v1/ledger/account')).balance === 11, 30_000)
  })

  it('7: prints an invite link that names this agent', async () => {
    const out = await next('npx clawnet invite')
    // npm may print its own warnings first.
    const link = new URL(out.split('\n').find(l => l.startsWith('http'))!)
    expect(link.searchParams.get('inviter')).toBe(selfId)
    expect(out).toMatch(/Join ClawNet: skill-agent/)
  })

  it('8: the autonomy config is one the peer reads as written; activity, pause and resume work', async () => {
    const json = (await skillBlocks()).find(b => b.lang === 'json')!
    const config = parseConfig(JSON.parse(json.code), 'x')
    expect(config.persona.name).toBe('openclaw-agent')
    expect(config.limits).toMatchObject({ computeShare: 0.25, spendPerDay: 2_000_000, acceptTasks: ['chat'], tavern: true })
    const out = await next('node ')
    expect(out).toMatch(/^skill-agent: not autonomous, spent 0 of 1 credits today$/m)
    expect(out).toMatch(/^paused$/m)
    expect(out).toMatch(/^running$/m)
  })

  it('9: stops the peer, leaving the research log', async () => {
    const pid = Number(await readFile(join(data, 'peer.pid'), 'utf8'))
    await next('kill ')
    await waitFor('the peer to exit', () => { try { process.kill(pid, 0); return false } catch { return true } })
    expect((await stat(join(data, 'events.ndjson'))).size).toBeGreaterThan(0)
    const events = (await readFile(join(data, 'events.ndjson'), 'utf8')).trim().split('\n').map(l => JSON.parse(l))
    expect(events.some(e => e.type === 'message' && e.text === 'hello from friend')).toBe(true)
    expect(events.some(e => e.type === 'credit' && e.block === 'send')).toBe(true)
  })
})
