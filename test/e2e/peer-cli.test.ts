// `clawnet peer` started with bad input, as a person or a script meets it: each case ends with
// one clear line on stderr, a non-zero exit code and no stack trace; a running peer asked to
// host a bad model answers 400 and stays up.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MODELS_DIR, ROOT, startRelay } from '../helpers/relay.ts'
import { freePort, startPeerProcess, type PeerProcess } from '../helpers/peer-process.ts'

const MODEL = join(MODELS_DIR, 'stories260K/stories260K.gguf')

let relay: Awaited<ReturnType<typeof startRelay>>
let dir: string
let busy: Server
let busyPort: number
let peer: PeerProcess | undefined

// Each CLI start costs about two CPU-seconds (tsx, libp2p, onnxruntime): two at a time keep a 2-core machine busy without starving them.
let running = 0
const waiting: Array<() => void> = []

/** Runs the CLI to its end (killed after `timeoutMs`); the agent's data goes to a temp dir. */
async function clawnetPeer (args: string[], timeoutMs = 20_000): Promise<{ code: number | null, out: string }> {
  if (running >= 2) await new Promise<void>(resolve => waiting.push(resolve))
  running++
  try {
    return await runCli(args, timeoutMs)
  } finally {
    running--
    waiting.shift()?.()
  }
}

async function runCli (args: string[], timeoutMs: number): Promise<{ code: number | null, out: string }> {
  const data = await mkdtemp(join(dir, 'data-'))
  const child = spawn(process.execPath, [join(ROOT, 'bin/clawnet.js'), 'peer', '--data', data, '--no-stun', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', d => { out += String(d) })
  child.stderr.on('data', d => { out += String(d) })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(timer)
  return { code, out }
}

/** One clear `clawnet peer: …` line matching `message`, the exit code, and no stack trace. */
function expectRefused (r: { code: number | null, out: string }, code: number, message: RegExp): void {
  expect(r.code, r.out).toBe(code)
  expect(r.out).toMatch(/clawnet peer: /)
  expect(r.out).toMatch(message)
  expect(r.out).not.toMatch(/\n\s+at .+[:(]/)
  expect(r.out).not.toMatch(/node:internal|Error: /)
}

beforeAll(async () => {
  relay = await startRelay()
  dir = await mkdtemp(join(tmpdir(), 'clawnet-peer-cli-'))
  const bytes = new Uint8Array(await readFile(MODEL))
  await writeFile(join(dir, 'notes.txt'), 'hello, this is not a model\n')
  await writeFile(join(dir, 'truncated.gguf'), bytes.slice(0, 1000))
  // A block's weights set to NaN in the middle of the file (blk.2.ffn_gate.weight starts at 558592).
  const nan = bytes.slice()
  nan.fill(0xff, 592768, 592768 + 64)
  await writeFile(join(dir, 'nan.gguf'), nan)
  busy = createServer()
  await new Promise<void>(resolve => busy.listen(0, '127.0.0.1', resolve))
  busyPort = (busy.address() as { port: number }).port
})

afterAll(async () => {
  await peer?.stop()
  await new Promise(resolve => busy?.close(resolve))
  await relay?.stop()
  await rm(dir, { recursive: true, force: true })
})

describe.concurrent('clawnet peer refuses bad input', () => {
  it('--model: missing file, directory, text file, truncated GGUF', async () => {
    const [missing, directory, text, truncated] = await Promise.all([
      clawnetPeer(['--relay', relay.url, '--model', join(dir, 'nope.gguf')]),
      clawnetPeer(['--relay', relay.url, '--model', dir]),
      clawnetPeer(['--relay', relay.url, '--model', join(dir, 'notes.txt')]),
      clawnetPeer(['--relay', relay.url, '--model', join(dir, 'truncated.gguf')])
    ])
    expectRefused(missing, 1, /cannot host the model: .*nope\.gguf: no such file/)
    expectRefused(directory, 1, /is a directory: give the model file itself/)
    expectRefused(text, 1, /notes\.txt is not a model file: not GGUF/)
    expectRefused(truncated, 1, /truncated\.gguf: header truncated .*the file is incomplete \(download or copy it again\)/)
    // Refused before joining the mesh: the agent never started.
    for (const r of [missing, directory, text, truncated]) expect(r.out).not.toMatch(/ClawNet agent/)
  })

  it('--model: weights damaged into NaN, and an unreachable URL', async () => {
    const port = await freePort()
    const [nan, url] = await Promise.all([
      clawnetPeer(['--relay', relay.url, '--model', join(dir, 'nan.gguf')]),
      clawnetPeer(['--relay', relay.url, '--model', `http://127.0.0.1:${port}/m.gguf`])
    ])
    expectRefused(nan, 1, /nan\.gguf give NaN or infinite values: its weights are corrupt/)
    expectRefused(url, 1, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/m\\.gguf \\(ECONNREFUSED\\)`))
  })

  // 'abc' and '-1-2' take the same path as '3-1' (parsePeerArgs, see test/unit/peer-cli-input.test.ts).
  it('--layers: reversed, and beyond the model', async () => {
    const [reversed, beyond] = await Promise.all([
      clawnetPeer(['--relay', relay.url, '--model', MODEL, '--layers', '3-1']),
      clawnetPeer(['--relay', relay.url, '--model', MODEL, '--layers', '0-99'])
    ])
    expectRefused(reversed, 2, /the first block comes after the last; did you mean 1-3\?/)
    expect(reversed.out).toMatch(/Run 'clawnet peer --help'/)
    expectRefused(beyond, 1, /blocks 0-99 are not in stories260K\.gguf, which has 5 blocks: pick a range within 0-4/)
  })

  it('--memory-mb too small or not a number; --relay malformed; --api port in use; an unknown flag', async () => {
    const [small, nan, relayBad, apiBusy, unknown] = await Promise.all([
      clawnetPeer(['--relay', relay.url, '--model', MODEL, '--layers', '0-4', '--memory-mb', '0.5']),
      clawnetPeer(['--relay', relay.url, '--model', MODEL, '--memory-mb', 'lots']),
      clawnetPeer(['--relay', '127.0.0.1:8787', '--model', MODEL]),
      clawnetPeer(['--relay', relay.url, '--model', MODEL, '--api', `127.0.0.1:${busyPort}`]),
      clawnetPeer(['--relay', relay.url, '--model', MODEL, '--bogus'])
    ])
    expectRefused(small, 1, /blocks 0-4 of stories260K\.gguf need about .* lend more memory or host at most \d block/)
    expectRefused(nan, 2, /--memory-mb must be a positive number of MiB, got 'lots'/)
    expectRefused(relayBad, 2, /--relay must be the relay's URL/)
    expectRefused(apiBusy, 1, new RegExp(`--api 127\\.0\\.0\\.1:${busyPort}: the port is in use`))
    expectRefused(unknown, 2, /Unknown option '--bogus'/)
  })

  it('--data: a file, and a place no directory can be made (procfs, where Node\'s own mkdir -p never returns)', async () => {
    const [file, proc] = await Promise.all([
      clawnetPeer(['--relay', relay.url, '--data', join(dir, 'notes.txt', 'peer')]),
      clawnetPeer(['--relay', relay.url, '--data', '/proc/clawnet-peer-cli'])
    ])
    expectRefused(file, 1, /cannot create the data directory .*notes\.txt\/peer \(ENOTDIR\): give --data a directory/)
    expectRefused(proc, 1, /cannot create the data directory \/proc\/clawnet-peer-cli \(ENOENT\)/)
  })
})

describe('a running peer asked to host a bad model', () => {
  it('answers 400 with the reason and keeps running', async () => {
    peer = await startPeerProcess(relay.url, 'cli-input')
    const cases: Array<[unknown, RegExp]> = [
      [{ model: join(dir, 'nope.gguf') }, /no such file/],
      [{ model: join(dir, 'notes.txt') }, /not a model file/],
      [{ model: MODEL, layers: [0, 99] }, /blocks 0-99 are not in stories260K\.gguf/]
    ]
    for (const [body, message] of cases) {
      const r = await peer.post('/v1/swarm/host', body)
      expect(r.status).toBe(400)
      expect(r.body.error).toMatch(message)
    }
    expect(peer.child.exitCode).toBeNull()
    expect((await peer.get('/v1/mesh/self')).name).toBe('cli-input')
    expect((await peer.post('/v1/swarm/host', { model: MODEL, layers: [0, 4] })).status).toBe(201)
  })

  it('refuses a second agent on its data directory, which would fork its own ledger', async () => {
    // The later --data wins over the one clawnetPeer gives.
    expectRefused(await clawnetPeer(['--relay', relay.url, '--data', peer!.dataDir]), 1, /is in use by another clawnet agent/)
    expect(peer!.child.exitCode).toBeNull()
  })
})
