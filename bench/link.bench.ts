// One link's cost per message: round trips of a hidden-state-sized frame between two processes
// on loopback, over raw TCP and over libp2p (TCP + Noise + Yamux + our framing) as agents set
// it up, and with stock Noise, which hands the socket each message in four pieces. Rounds
// alternate between the two libp2p setups so the machine's drift falls on both alike.
// Then one message at a time in one process, as a hop sends its output: with the caches warm
// from the previous message, and after streaming more memory than any cache holds, which is
// what a host's compute does between two messages (its weights pass through every cache).
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
/** One-way messages per case, and the first few left out (connections and JIT warming up). */
const ONE_WAY = 240
const ONE_WAY_WARMUP = 40
/** Far more than this machine's last-level cache; a Q8_0 block of the swarm bench's large model is ~27 MB. */
const FLUSH_BYTES = 128 * 2 ** 20

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

/** Reads `buffer` end to end, a line at a time: what it held before is out of every cache. */
function flushCaches (buffer: Float64Array): number {
  let sum = 0
  for (let i = 0; i < buffer.length; i += 8) sum += buffer[i]
  return sum
}

interface OneWay {
  /** Hands one frame to the link; resolves once the other end has read it whole. */
  send: (frame: Uint8Array) => { sent: Promise<void>, read: Promise<void> }
  close: () => Promise<void>
}

/** Both ends of a libp2p link as agents set it up, in this process. */
async function libp2pOneWay (): Promise<OneWay> {
  const [a, b] = [await linkNode('agents'), await linkNode('agents', true)]
  const incoming = new Promise<ReturnType<typeof jsonFrames>>(resolve => {
    void b.handle('/clawnet-bench/one-way/1', stream => { resolve(jsonFrames(stream, 1 << 24)) })
  })
  const out = jsonFrames(await (await a.dial(b.getMultiaddrs()[0])).newStream('/clawnet-bench/one-way/1'), 1 << 24)
  await out.write({ hello: true })
  const into = await incoming
  await into.readJson()
  return {
    // A step's header and tensor, as a host pushes them.
    send: frame => ({ sent: out.writeWithBytes({ position: 1, tokens: 1, dtype: 'f32' }, frame), read: (async () => { await into.readJson(); await into.readBytes() })() }),
    close: async () => { await a.stop(); await b.stop() }
  }
}

/** Both ends of a raw TCP connection, in this process. */
async function rawOneWay (): Promise<OneWay> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const accepted = new Promise<net.Socket>(resolve => server.once('connection', resolve))
  const out = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  out.setNoDelay(true)
  const into = await accepted
  return {
    send: frame => {
      const read = new Promise<void>(resolve => {
        let got = 0
        const on = (d: Buffer): void => { got += d.length; if (got >= frame.byteLength) { into.off('data', on); resolve() } }
        into.on('data', on)
      })
      out.write(frame)
      return { sent: Promise.resolve(), read }
    },
    close: async () => { out.destroy(); into.destroy(); await new Promise(resolve => server.close(resolve)) }
  }
}

/**
 * Median time to hand a frame to the link (the sender's own work) and until the receiver has
 * read it, with the caches warm and right after flushing them.
 */
async function oneWay (link: OneWay, size: number, flush: Float64Array): Promise<Record<'warm' | 'after_cache_flush', { send_ms: number, delivered_ms: number }>> {
  const frame = new Uint8Array(size).fill(7)
  const out: Record<string, { send_ms: number, delivered_ms: number }> = {}
  let sink = 0
  for (const mode of ['warm', 'after_cache_flush']) {
    const send: number[] = []
    const delivered: number[] = []
    for (let i = 0; i < ONE_WAY; i++) {
      if (mode === 'after_cache_flush') sink += flushCaches(flush)
      const t0 = performance.now()
      const { sent, read } = link.send(frame)
      const t1 = performance.now()
      await read
      const t2 = performance.now()
      await sent
      if (i >= ONE_WAY_WARMUP) { send.push(t1 - t0); delivered.push(t2 - t0) }
    }
    out[mode] = { send_ms: exact(send), delivered_ms: exact(delivered) }
  }
  if (Number.isNaN(sink)) throw new Error('unreachable: keeps the flush from being optimised away')
  return out as Record<'warm' | 'after_cache_flush', { send_ms: number, delivered_ms: number }>
}

/** Exact medians to the microsecond: these are fractions of a millisecond, where quantile()'s 0.01 is coarse. */
const exact = (xs: number[]): number => Math.round(exactQuantile(xs, 0.5) * 1000) / 1000

async function oneWayFigures (): Promise<Record<string, unknown>> {
  const flush = new Float64Array(FLUSH_BYTES / 8).fill(1)
  const links = { libp2p_agents: await libp2pOneWay(), raw_tcp: await rawOneWay() }
  try {
    const out: Record<string, unknown> = {}
    for (const size of SIZES) {
      const libp2p = await oneWay(links.libp2p_agents, size, flush)
      const raw = await oneWay(links.raw_tcp, size, flush)
      out[`frame_${size}_bytes`] = {
        libp2p_agents: libp2p,
        raw_tcp: raw,
        libp2p_delivered_after_flush_vs_warm: ratio(libp2p.after_cache_flush.delivered_ms, libp2p.warm.delivered_ms),
        libp2p_vs_raw_tcp_delivered_after_flush: ratio(libp2p.after_cache_flush.delivered_ms, raw.after_cache_flush.delivered_ms)
      }
      console.error(`${size} B one way, in-process: libp2p ${libp2p.warm.delivered_ms} ms warm, ${libp2p.after_cache_flush.delivered_ms} ms after a cache flush (raw TCP ${raw.warm.delivered_ms} / ${raw.after_cache_flush.delivered_ms} ms)`)
    }
    return out
  } finally {
    for (const l of Object.values(links)) await l.close()
  }
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
      const med = (xs: number[]): number => exactQuantile(xs, 0.5)
      out[`frame_${size}_bytes`] = {
        round_trip_ms: { raw_tcp: exact(wall.raw), libp2p_agents: exact(wall.agents), libp2p_stock_noise: exact(wall.stock) },
        client_cpu_ms_per_round_trip: { raw_tcp: exact(cpu.raw), libp2p_agents: exact(cpu.agents), libp2p_stock_noise: exact(cpu.stock) },
        agents_vs_stock_round_trip: ratio(med(wall.agents), med(wall.stock)),
        agents_vs_stock_cpu: ratio(med(cpu.agents), med(cpu.stock)),
        libp2p_agents_vs_raw_tcp_round_trip: ratio(med(wall.agents), med(wall.raw))
      }
      console.error(`${size} B: round trip ${exact(wall.raw)} ms raw TCP, ${exact(wall.agents)} ms libp2p as agents run it, ${exact(wall.stock)} ms with stock Noise`)
    }
    sock.destroy()
    return {
      round_trips: out,
      one_way_in_process: await oneWayFigures(),
      note: 'two processes on one 2-core machine; a round trip is one frame each way (our length-prefixed framing on one stream). One way: both ends in one process; send_ms is the sender\'s own work, delivered_ms until the receiver has read the frame; after_cache_flush follows a read of 128 MiB, as a hop\'s compute streams its weights between two messages.'
    }
  } finally {
    for (const n of nodes) await n.stop()
    child.kill()
  }
}
