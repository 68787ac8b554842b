// One link's cost per message: round trips of a hidden-state-sized frame between two processes
// on loopback, over raw TCP and over libp2p (TCP + Noise + Yamux + our framing) as agents set
// it up, and with stock Noise, which hands the socket each message in four pieces. Rounds
// alternate between the two libp2p setups so the machine's drift falls on both alike.
import { fork } from 'node:child_process'
import net from 'node:net'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { multiaddr } from '@multiformats/multiaddr'
import { streamMuxer } from '../src/mesh/muxer.ts'
import { connectionEncrypter } from '../src/mesh/encrypter.ts'
import { jsonFrames } from '../src/mesh/frames.ts'
import { exactQuantile } from '../src/stats.ts'
import { ownCpuMs, ratio } from './measure.ts'
import { ROOT } from '../test/helpers/relay.ts'

/** f32 hidden states of one token: the bench models' widths (512 and 1536). */
const SIZES = [2048, 6144]
const ROUNDS = 6
const PER_ROUND = 400

export async function linkNode (encrypter: 'agents' | 'stock', listen = false): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [encrypter === 'agents' ? connectionEncrypter() : noise()],
    streamMuxers: [streamMuxer()],
    connectionGater: { denyDialMultiaddr: () => false }
  })
}

/** `n` round trips; wall times and this process's CPU per round trip. */
async function trips (once: () => Promise<void>, n: number): Promise<{ wall: number[], cpu: number }> {
  const wall: number[] = []
  const c0 = ownCpuMs()
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await once()
    wall.push(performance.now() - t)
  }
  return { wall, cpu: (ownCpuMs() - c0) / n }
}

export async function run (): Promise<Record<string, unknown>> {
  const child = fork(`${ROOT}/bin/run-ts.js`, [`${ROOT}/bench/link-echo.ts`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const nodes: Libp2p[] = []
  try {
    const far: Record<string, any> = await new Promise((resolve, reject) => { child.once('message', resolve); child.once('exit', reject) })
    const sock = net.connect(far.raw, '127.0.0.1')
    sock.setNoDelay(true)
    await new Promise(resolve => sock.once('connect', resolve))
    const frames: Record<string, ReturnType<typeof jsonFrames>> = {}
    for (const encrypter of ['agents', 'stock'] as const) {
      const node = await linkNode(encrypter)
      nodes.push(node)
      frames[encrypter] = jsonFrames(await (await node.dial(multiaddr(far[encrypter]))).newStream('/clawnet-bench/echo/1'), 1 << 24)
    }
    const out: Record<string, unknown> = {}
    for (const size of SIZES) {
      const payload = new Uint8Array(size).fill(7)
      const rawTrip = async (): Promise<void> => await new Promise(resolve => {
        let got = 0
        const on = (d: Buffer): void => { got += d.length; if (got >= size) { sock.off('data', on); resolve() } }
        sock.on('data', on)
        sock.write(payload)
      })
      const wall: Record<string, number[]> = { raw: [], agents: [], stock: [] }
      const cpu: Record<string, number[]> = { raw: [], agents: [], stock: [] }
      for (let r = 0; r <= ROUNDS; r++) {
        for (const [name, once] of [['raw', rawTrip], ...(['agents', 'stock'] as const).map(e => [e, async () => { await frames[e].writeBytes(payload); await frames[e].readBytes() }])] as Array<[string, () => Promise<void>]>) {
          const t = await trips(once, PER_ROUND)
          // Round 0 warms up connections and JIT.
          if (r > 0) { wall[name].push(...t.wall); cpu[name].push(t.cpu) }
        }
      }
      // Exact medians: these round trips are fractions of a millisecond, where quantile()'s 0.01 is coarse.
      const med = (xs: number[]): number => exactQuantile(xs, 0.5)
      const ms = (x: number): number => Math.round(x * 1000) / 1000
      out[`frame_${size}_bytes`] = {
        round_trip_ms: { raw_tcp: ms(med(wall.raw)), libp2p_agents: ms(med(wall.agents)), libp2p_stock_noise: ms(med(wall.stock)) },
        client_cpu_ms_per_round_trip: { raw_tcp: ms(med(cpu.raw)), libp2p_agents: ms(med(cpu.agents)), libp2p_stock_noise: ms(med(cpu.stock)) },
        agents_vs_stock_round_trip: ratio(med(wall.agents), med(wall.stock)),
        agents_vs_stock_cpu: ratio(med(cpu.agents), med(cpu.stock)),
        libp2p_agents_vs_raw_tcp_round_trip: ratio(med(wall.agents), med(wall.raw))
      }
      console.error(`${size} B: round trip ${ms(med(wall.raw))} ms raw TCP, ${ms(med(wall.agents))} ms libp2p as agents run it, ${ms(med(wall.stock))} ms with stock Noise`)
    }
    sock.destroy()
    return { ...out, note: 'two processes on one 2-core machine; a round trip is one frame each way (our length-prefixed framing on one stream)' }
  } finally {
    for (const n of nodes) await n.stop()
    child.kill()
  }
}
