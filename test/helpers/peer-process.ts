import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { ROOT } from './relay.ts'

/**
 * A port for a process that must be told it in advance. It is drawn outside the kernel's
 * ephemeral range: a port from that range (what listen(0) hands out) can be taken by any outgoing
 * connection between this check and the child's bind, which once failed CI.
 */
export async function freePort (): Promise<number> {
  const spans = portsOutside(ephemeralRange())
  const total = spans.reduce((n, [a, b]) => n + b - a + 1, 0)
  if (total === 0) throw new Error('every unprivileged port is in the kernel\'s ephemeral range; no port can be handed over safely')
  for (let tries = 0; tries < 50; tries++) {
    const port = nthPort(spans, Math.floor(Math.random() * total))
    if (await canListen(port)) return port
  }
  throw new Error(`no free port in ${spans.map(([a, b]) => `${a}-${b}`).join(', ')}`)
}

/** The unprivileged ports (from 10000, below which well-known services sit) outside [low, high]. */
export function portsOutside ([low, high]: [number, number]): Array<[number, number]> {
  const spans: Array<[number, number]> = [[10_000, Math.min(low - 1, 65_535)], [Math.max(high + 1, 10_000), 65_535]]
  return spans.filter(([a, b]) => a <= b)
}

/** The k-th port (0-based) counting through the spans in order. */
function nthPort (spans: Array<[number, number]>, k: number): number {
  for (const [a, b] of spans) {
    if (k <= b - a) return a + k
    k -= b - a + 1
  }
  throw new RangeError(`port index ${k} is past the spans' end`)
}

/** Where Linux hands out ports of its own; its usual range where that cannot be read. */
function ephemeralRange (): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
    if (Number.isInteger(low) && Number.isInteger(high) && low <= high) return [low, high]
  } catch {}
  return [32768, 60999]
}

async function canListen (port: number): Promise<boolean> {
  const s = createServer()
  return await new Promise<boolean>(resolve => {
    s.once('error', () => { resolve(false) })
    s.listen(port, '127.0.0.1', () => { s.close(() => { resolve(true) }) })
  })
}

export interface PeerProcess {
  api: string
  dataDir: string
  child: ChildProcess
  output: () => string
  get: <T = any>(path: string) => Promise<T>
  post: <T = any>(path: string, body: unknown) => Promise<{ status: number, body: T }>
  stop: () => Promise<void>
}

/** `clawnet peer` as a real child process, exactly as a user or an agent computer runs it. */
export async function startPeerProcess (relay: string, name: string, extra: string[] = [], opts: { startTimeoutMs?: number } = {}): Promise<PeerProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), 'clawnet-peer-'))
  let out = ''
  // Port 0: the peer binds a free port itself and prints it. A port found free here and handed
  // over can be taken by another process (a browser, another test's peer) before the peer binds it.
  const child = spawn(process.execPath, [join(ROOT, 'bin/clawnet.js'), 'peer', '--relay', relay, '--name', name, '--data', dataDir, '--api', '127.0.0.1:0', '--no-stun', ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout!.on('data', d => { out += String(d) })
  child.stderr!.on('data', d => { out += String(d) })
  // Hosting peers load (and hash) their model before the API comes up.
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000)
  let listening: RegExpExecArray | null
  while ((listening = /API: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out)) == null) {
    if (child.exitCode != null) throw new Error(`peer exited ${child.exitCode}: ${out}`)
    if (Date.now() > deadline) {
      // Never leave a half-started peer behind.
      child.kill('SIGKILL')
      await rm(dataDir, { recursive: true, force: true })
      throw new Error(`peer did not start within ${opts.startTimeoutMs ?? 60_000} ms: ${out}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const api = listening[1]
  return {
    api,
    dataDir,
    child,
    output: () => out,
    get: async path => await (await fetch(api + path)).json(),
    post: async (path, body) => {
      const res = await fetch(api + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      return { status: res.status, body: await res.json() }
    },
    async stop () {
      if (child.exitCode == null) {
        child.kill('SIGTERM')
        await new Promise(resolve => { child.once('exit', resolve); setTimeout(resolve, 5000) })
        if (child.exitCode == null) child.kill('SIGKILL')
      }
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}

export async function waitFor<T> (what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await fn()
      if (v !== undefined && v !== false) return v as T
    } catch (err) {
      last = err
    }
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
  throw new Error(`timed out waiting for ${what}${last != null ? `: ${String(last)}` : ''}`)
}

/** Waits until `peer` sees one model in the mesh with every block served; returns its swarm view. */
export async function waitForCoverage (peer: PeerProcess, timeoutMs = 30_000): Promise<any> {
  return await waitFor('the client to see every block of the model served', async () => {
    const v = await peer.get('/v1/swarm')
    return v.models.length === 1 && v.models[0].missing.length === 0 ? v : undefined
  }, timeoutMs, 300)
}
